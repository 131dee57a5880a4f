"""How the record commands print: JSON for scripts, short columns for people, and the times
and filters they take."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from schemas.a2a import TaskState
from schemas.tasks import is_terminal

MOMENT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def finished(state: str) -> bool:
    return is_terminal(TaskState(state))


def dump(body: Any) -> None:
    click.echo(json.dumps(body, indent=2))


def short(value: str | None, width: int = 8) -> str:
    return (value or "-")[:width]


def when(stamp: str | None) -> str:
    return stamp[:19].replace("T", " ") if stamp else "-"


def text_of(message: dict[str, Any] | None) -> str:
    if not message:
        return ""
    return " ".join(p["text"] for p in message.get("parts", []) if p.get("text"))


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def only_given(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v not in (None, (), [])}


def moment(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC; ``now`` is now."""
    if text == "now":
        return datetime.now(UTC)
    try:
        return MOMENT.validate_python(text)
    except ValidationError:
        try:
            naive = datetime.fromisoformat(text)
        except ValueError:
            raise click.BadParameter(f"not an ISO 8601 time: {text!r}") from None
        return naive.replace(tzinfo=UTC) if naive.tzinfo is None else naive
