"""Publish registry commands to Kafka or AWS MSK, as an operator would.

    python -m producers.msk_producer register --name summarizer --version 1.0.0 \
        --skill summarize:text,summaries
    python -m producers.msk_producer heartbeat <agent_id> --status busy
    python -m producers.msk_producer deregister <agent_id> --reason "retired"
    python -m producers.msk_producer file commands.jsonl      # one JSON command per line

Connection settings come from KOLONY_* variables (KOLONY_BOOTSTRAP_SERVERS, and for MSK
KOLONY_SECURITY_PROTOCOL=SASL_SSL, KOLONY_SASL_MECHANISM=AWS_MSK_IAM, KOLONY_AWS_REGION).
Every command is validated before it is sent; ``--dry-run`` prints it and sends nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from kolony.commands import new_envelope
from kolony.kafka import producer_options
from kolony.settings import Settings
from schemas.a2a import AgentCard, AgentSkill
from schemas.ids import agent_id_for
from schemas.registry import (
    AGENT_COMMAND,
    AgentCommand,
    DeregisterAgent,
    RecordHeartbeat,
    RegisterAgent,
)
from schemas.routes import route


def _envelope() -> dict[str, Any]:
    return new_envelope("msk_producer")


async def _send(settings: Settings, commands: list[AgentCommand]) -> list[str]:
    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=5)
    await producer.start()
    try:
        sent = []
        for command in commands:
            to = route(settings.topics, command)
            meta = await producer.send_and_wait(
                to.commands,
                command.model_dump_json(exclude_none=True).encode(),
                key=to.key.encode(),
            )
            sent.append(f"{meta.topic}[{meta.partition}]@{meta.offset}")
        return sent
    finally:
        await producer.stop()


def publish(commands: list[AgentCommand], dry_run: bool) -> None:
    settings = Settings()
    if dry_run:
        for command in commands:
            to = route(settings.topics, command)
            payload = command.model_dump_json(exclude_none=True)
            click.echo(f"(dry run) {to.commands} key={to.key} {payload}")
        return
    try:
        positions = asyncio.run(_send(settings, commands))
    except (KafkaError, OSError) as exc:
        raise click.ClickException(f"Kafka did not take the command(s): {exc!r}") from None
    for command, position in zip(commands, positions, strict=True):
        click.echo(
            f"published {command.type} {command.command_id} for {command.agent_id} -> {position}"
        )


dry_run_option = click.option("--dry-run", is_flag=True, help="print, do not send")


@click.group()
def main() -> None:
    """Publish Kolony registry commands to Kafka."""


@main.command()
@click.option("--name", required=True)
@click.option("--version", "version_", required=True)
@click.option("--description", default="")
@click.option("--skill", "skills", multiple=True, help="id[:tag,tag...] (repeatable)")
@click.option("--ttl", type=float, help="seconds of silence before the agent goes offline")
@dry_run_option
def register(
    name: str,
    version_: str,
    description: str,
    skills: tuple[str, ...],
    ttl: float | None,
    dry_run: bool,
) -> None:
    """Register (or renew) an agent."""
    parsed = []
    for spec in skills:
        skill_id, _, tags = spec.partition(":")
        parsed.append(
            AgentSkill(id=skill_id, name=skill_id, tags=[t for t in tags.split(",") if t])
        )
    try:
        card = AgentCard(name=name, version=version_, description=description, skills=parsed)
        command = RegisterAgent(
            **_envelope(), agent_id=agent_id_for(name, version_), card=card, ttl_seconds=ttl
        )
    except ValidationError as exc:
        raise click.ClickException(_first_error(exc)) from None
    publish([command], dry_run)


@main.command()
@click.argument("agent_id")
@click.option("--status", type=click.Choice(["online", "busy", "error"]))
@dry_run_option
def heartbeat(agent_id: str, status: str | None, dry_run: bool) -> None:
    """Record a heartbeat (optionally reporting a status)."""
    try:
        command = RecordHeartbeat(**_envelope(), agent_id=agent_id, status=status)
    except ValidationError as exc:
        raise click.ClickException(_first_error(exc)) from None
    publish([command], dry_run)


@main.command()
@click.argument("agent_id")
@click.option("--reason")
@dry_run_option
def deregister(agent_id: str, reason: str | None, dry_run: bool) -> None:
    """Deregister an agent."""
    try:
        command = DeregisterAgent(**_envelope(), agent_id=agent_id, reason=reason)
    except ValidationError as exc:
        raise click.ClickException(_first_error(exc)) from None
    publish([command], dry_run)


@main.command("file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@dry_run_option
def from_file(path: Path, dry_run: bool) -> None:
    """Publish the commands in a JSON-lines file (all are validated before any is sent)."""
    commands = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            commands.append(AGENT_COMMAND.validate_json(line))
        except ValidationError as exc:
            raise click.ClickException(f"{path}:{number}: {_first_error(exc)}") from None
    publish(commands, dry_run)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "command"
    return f"invalid {where}: {error['msg']}"


if __name__ == "__main__":
    main()
