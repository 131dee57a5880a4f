"""``kolony replay --until``: the registry and the task table as they were at a moment,
read from Kafka (``KOLONY_BOOTSTRAP_SERVERS``).

Reads the agents' and tasks' event logs from their start and folds, with the same code the
gateway uses, every event that occurred at or before the moment; nothing else is needed,
because the log is the source of truth.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from core.directory import AgentDirectory
from kolony.cli.common import as_json, load_settings, quiet_kafka, run_main
from kolony.cli.show import dump, moment, short
from kolony.follower import partitions_of
from kolony.kafka import client_options, consumer_options, read_backlog, start_clients
from kolony.settings import Settings
from schemas.registry import AGENT_EVENT, RegisteredAgent
from schemas.tasks import TASK_EVENT, TaskRecord
from services.boards.tasks import TaskBoard


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    agents: list[RegisteredAgent]
    tasks: list[TaskRecord]
    applied: int  # events at or before ``at``
    later: int  # events after it, left out
    undecodable: int


async def replay(
    settings: Settings, until: datetime, progress: Callable[[int], None] | None = None
) -> Snapshot:
    topics = settings.topics
    producer = AIOKafkaProducer(**client_options(settings))  # it only looks up partitions
    consumer = AIOKafkaConsumer(
        **consumer_options(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await start_clients(settings, producer, consumer)
    try:
        partitions = await partitions_of(producer, (topics.agent_events, topics.task_events))
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        if progress is not None:
            progress(sum(ends[tp] - starts[tp] for tp in partitions))
        records = await read_backlog(consumer, ends)
    finally:
        await consumer.stop()
        await producer.stop()

    directory, board = AgentDirectory(), TaskBoard()
    applied = later = undecodable = 0
    # Each entity's events are in one partition, in order; across entities, the time orders
    # them well enough (folds of different entities do not depend on each other).
    for record in sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset)):
        try:
            if record.topic == topics.agent_events:
                agent_event = AGENT_EVENT.validate_json(record.value)
                if agent_event.occurred_at > until:
                    later += 1
                    continue
                directory.apply(agent_event)
            else:
                task_event = TASK_EVENT.validate_json(record.value)
                if task_event.occurred_at > until:
                    later += 1
                    continue
                board.apply(task_event)
            applied += 1
        except ValidationError:
            undecodable += 1
    return Snapshot(
        at=until,
        agents=sorted(directory.agents(), key=lambda a: a.registered_at),
        tasks=sorted(board.tasks(), key=lambda t: t.created_at),
        applied=applied,
        later=later,
        undecodable=undecodable,
    )


@click.command("replay")
@as_json
@click.option("--until", "until_text", required=True, help="ISO 8601 time (UTC if no zone)")
def replay_command(as_json: bool, until_text: str) -> None:
    """The agents and tasks as they were at a moment, rebuilt from the event log."""

    until = moment(until_text)
    quiet_kafka()
    settings = load_settings()
    result: list[Snapshot] = []

    def progress(total: int) -> None:
        click.echo(f"reading {total:,} events ...", err=True)

    async def go() -> None:
        result.append(await replay(settings, until, progress))

    run_main(go)
    if not result:
        sys.exit(1)  # interrupted
    snapshot = result[0]
    if as_json:
        dump(
            {
                "at": snapshot.at.isoformat(),
                "agents": [a.model_dump(mode="json", exclude_none=True) for a in snapshot.agents],
                "tasks": [t.model_dump(mode="json", exclude_none=True) for t in snapshot.tasks],
                "events_applied": snapshot.applied,
                "events_later": snapshot.later,
            }
        )
        return
    click.echo(
        f"as of {snapshot.at.isoformat(timespec='seconds')}: {len(snapshot.agents)} agent(s), "
        f"{len(snapshot.tasks)} task(s) ({snapshot.applied:,} events; "
        f"{snapshot.later:,} later ones left out)"
    )
    for agent in snapshot.agents:
        click.echo(
            f"  agent {agent.agent_id}  {agent.status.value:8}  "
            f"{agent.card.name} {agent.card.version}"
        )
    for task in snapshot.tasks:
        click.echo(
            f"  task  {task.id}  {task.status.state.value:14}  "
            f"{short(task.assignee_id)}  {task.capability or task.title or ''}"
        )


COMMANDS = (replay_command,)
