"""What every decider puts around its events: envelopes, rejections, remembered commands."""

from __future__ import annotations

from datetime import datetime

from schemas.base import CommandRejected, RejectionCode
from schemas.ids import event_id_for

# How many applied command ids an entity's state remembers to drop redeliveries.
REMEMBERED_COMMANDS = 32


def envelope(
    command_id: str, correlation_id: str | None, seq: int, now: datetime, index: int = 0
) -> dict[str, object]:
    """The envelope of the ``index``-th event a command causes on an entity at ``seq``."""
    return {
        "event_id": event_id_for(command_id, index),
        "command_id": command_id,
        "correlation_id": correlation_id or command_id,
        "causation_id": command_id,
        "occurred_at": now,
        "seq": seq + 1 + index,
    }


def remember(recent: tuple[str, ...], command_id: str | None) -> tuple[str, ...]:
    """``recent`` with ``command_id`` added, keeping the last few."""
    if command_id is None or command_id in recent:
        return recent
    return (*recent, command_id)[-REMEMBERED_COMMANDS:]


def rejection(
    command_id: str | None,
    correlation_id: str | None,
    command_type: str | None,
    entity_id: str | None,
    now: datetime,
    code: RejectionCode,
    reason: str,
    seq: int = 0,
) -> CommandRejected:
    """A rejection event; also used by the stream shells for undecodable commands."""
    cause = command_id or f"undecodable:{entity_id}:{now.isoformat()}"
    return CommandRejected(
        event_id=event_id_for(cause, 0),
        command_id=command_id,
        correlation_id=correlation_id or command_id,
        causation_id=command_id,
        occurred_at=now,
        seq=seq,
        entity_id=entity_id,
        command_type=command_type,
        code=code,
        reason=reason,
    )
