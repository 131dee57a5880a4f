"""The chaos suite's audit: read every event log and changelog from the start, and check that
each acknowledged command was decided once, no entity transition was written twice, every
task finished, and each changelog is the fold of its events (see bench/chaos.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import TypeAdapter

from core import memory, messages, registry, tasks
from kolony.kafka import (
    client_options,
    consumer_options,
    read_backlog,
)
from kolony.settings import Settings
from schemas.inbox import INBOX_ITEM
from schemas.memory import MEMORY_ENTRY, MEMORY_EVENT
from schemas.messages import MESSAGE_EVENT, MESSAGING_STATE
from schemas.registry import AGENT_EVENT, AGENT_STATE
from schemas.tasks import TASK_ENTRY, TASK_EVENT, TERMINAL_STATES
from schemas.topics import AGENTS_TABLE, MEMORY_TABLE, MESSAGING_TABLE, TASKS_TABLE


@dataclass(frozen=True)
class Log:
    """One decider's event log and table, and how to fold the one into the other."""

    name: str
    events: str
    table: str
    event_adapter: TypeAdapter[Any]
    state_adapter: TypeAdapter[Any]
    decider: Any


def logs(settings: Settings) -> list[Log]:
    t = settings.topics
    return [
        Log("agents", t.agent_events, AGENTS_TABLE, AGENT_EVENT, AGENT_STATE, registry),
        Log("tasks", t.task_events, TASKS_TABLE, TASK_EVENT, TASK_ENTRY, tasks),
        Log(
            "messages", t.message_events, MESSAGING_TABLE, MESSAGE_EVENT, MESSAGING_STATE, messages
        ),
        Log("memory", t.memory_events, MEMORY_TABLE, MEMORY_EVENT, MEMORY_ENTRY, memory),
    ]


async def read_topic(settings: Settings, topic: str, partitions: int) -> list[Any]:
    """Every record of ``topic``, from its start to its current end, in partition order."""
    consumer = AIOKafkaConsumer(**consumer_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records = await read_backlog(consumer, await consumer.end_offsets(tps))
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


@dataclass
class Audit:
    commands: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    repeated_transitions: list[str] = field(default_factory=list)
    stuck_tasks: list[str] = field(default_factory=list)
    table_differences: list[str] = field(default_factory=list)
    # Commands a client gave up on (never acknowledged, so not held to the checks above):
    # what the log says of each, to tell a gateway that missed an outcome from a lost one.
    abandoned: dict[str, list[str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.repeated_transitions
            or self.stuck_tasks
            or self.table_differences
        )


async def audit(
    settings: Settings,
    acknowledged: set[str],
    tasks_submitted: set[str],
    abandoned: frozenset[str] = frozenset(),
) -> Audit:
    """Read every event log and changelog from the start and check them (see the module)."""
    result = Audit(commands=len(acknowledged))
    decisions: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    written: dict[str, str] = {}  # where and when a command's first decision was written
    task_states: dict[str, Any] = {}
    for log in logs(settings):
        folded: dict[str, Any] = {}
        transitions: Counter[tuple[str, int]] = Counter()
        for record in await read_topic(settings, log.events, settings.partitions):
            event = log.event_adapter.validate_json(record.value)
            key = record.key.decode() if record.key else ""
            if event.command_id is not None:
                kind = "rejected" if event.type == "command.rejected" else event.type
                decisions[event.command_id].append((log.name, key, kind))
                if event.command_id in abandoned and event.command_id not in written:
                    stamp = datetime.fromtimestamp(record.timestamp / 1000, UTC)
                    written[event.command_id] = (
                        f"{record.partition}:{record.offset} at {stamp:%H:%M:%S.%f}"
                    )
            if event.type == "command.rejected":
                continue
            transitions[key, event.seq] += 1
            folded[key] = log.decider.evolve(folded.get(key, log.decider.initial_state()), event)
        result.repeated_transitions += [
            f"{log.name} {key} seq {seq} x{n}" for (key, seq), n in transitions.items() if n > 1
        ]
        changelog: dict[str, Any] = {}
        topic = settings.topics.changelog(log.table)
        for record in await read_topic(settings, topic, settings.partitions):
            changelog[record.key.decode()] = (
                log.state_adapter.validate_json(record.value) if record.value else None
            )
        for key in folded.keys() | changelog.keys():
            if folded.get(key) != changelog.get(key):
                result.table_differences.append(
                    f"{log.name} {key}: {_difference(folded.get(key), changelog.get(key))}"
                )
        if log.name == "tasks":
            task_states = folded
    for command_id in sorted(acknowledged):
        seen = decisions.get(command_id, [])
        if not seen:
            result.lost.append(command_id)
            continue
        kinds = Counter(seen)
        rejected = sum(n for (_, _, kind), n in kinds.items() if kind == "rejected")
        if any(n > 1 for n in kinds.values()) or (rejected and len(seen) > rejected):
            result.duplicated.append(f"{command_id}: {sorted(kinds.elements())}")
    result.abandoned = {
        c: [f"{kind} ({written.get(c, '?')})" for (_, _, kind) in decisions.get(c, [])]
        for c in abandoned
    }
    stuck = {}
    for task_id in sorted(tasks_submitted):
        entry = task_states.get(task_id)
        if entry is None or entry.task is None or entry.task.status.state not in TERMINAL_STATES:
            stuck[task_id] = entry.task.status.state if entry and entry.task else "missing"
    if stuck:
        # Whether the hub delivered them: a delivery in the inbox points at the agent's side.
        inbox = settings.topics.agent_inbox
        delivered: dict[str, list[str]] = defaultdict(list)
        for record in await read_topic(settings, inbox, settings.inbox_partitions):
            item = INBOX_ITEM.validate_json(record.value)
            if item.type == "inbox.task_assigned" and item.task.id in stuck:
                delivered[item.task.id].append(
                    f"{item.agent_id}@{record.partition}:{record.offset}"
                )
        result.stuck_tasks = [
            f"{task_id}: {state}; "
            + (
                f"delivered to {', '.join(delivered[task_id])}"
                if task_id in delivered
                else "no delivery"
            )
            for task_id, state in stuck.items()
        ]
    return result


def _difference(folded: Any, stored: Any) -> str:
    """Where the fold of an entity's events and its changelog's last state differ."""
    if folded is None or stored is None:
        return f"events fold to {folded!r}, the changelog holds {stored!r}"[:500]
    a = folded.model_dump(mode="json")
    b = stored.model_dump(mode="json")
    return "; ".join(f"{path}: events {x!r}, changelog {y!r}" for path, x, y in _paths(a, b))[:1000]


def _paths(a: Any, b: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            yield from _paths(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    elif a != b:
        yield path, a, b


async def worker_settled(settings: Settings) -> bool:
    """Whether the worker has committed every command there is: each decided, and its
    events and states written (it commits a command only after both)."""
    t = settings.topics
    topics = (t.agent_commands, t.task_commands, t.message_commands, t.memory_commands)
    tps = [TopicPartition(topic, p) for topic in topics for p in range(settings.partitions)]
    try:
        return await _committed_to_the_end(settings, tps, t.app_id)
    except KafkaError:  # a coordinator still moving after a broker kill: ask again
        return False


async def _committed_to_the_end(settings: Settings, tps: list[TopicPartition], group: str) -> bool:
    admin = AIOKafkaAdminClient(**client_options(settings))
    consumer = AIOKafkaConsumer(**consumer_options(settings), enable_auto_commit=False)
    await admin.start()
    try:
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return all(
        ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp]) for tp in tps
    )
