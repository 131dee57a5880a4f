"""``make chaos``: kill -9 the processes of a hub again and again under load, then audit the log.

Agents speak Kafka directly (docs/protocol.md): they register, heartbeat, take the tasks
delivered to their inbox (working, then completed), message each other and write memory,
at a steady rate. REST clients submit tasks and write memory through a gateway, each
request with an ``Idempotency-Key``, retried with the same key until answered. An SDK agent
(``bench/chaos_agent.py``) takes a share of the tasks. Meanwhile one of the targets (the
stream worker, the gateway, the SDK agent, a broker of a three-node cluster) is killed with
SIGKILL and started again, in turn. A command counts once it was acknowledged: by the
broker for the agents on Kafka, by a 2xx answer for the REST clients. A process that dies on
its own is started again, as a supervisor would, and counted. Then the log itself is
audited:

- lost: an acknowledged command with no decision event (accepted or rejected);
- duplicated: a command decided twice (two rejections, a rejection and an acceptance, or
  the same kind of event for the same entity twice), or an entity transition (``seq``)
  written twice;
- stuck: a task not finished although its (live) assignee works through its inbox;
- tables: a changelog that is not the fold of its event log.

Heartbeats are part of the load but not audited: most are, by design, decided without an
event (docs/design.md). Ends with one line:
``chaos: <n> commands, <k> kills, <l> lost, <d> duplicated, resume p99 <s> s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import BaseModel, TypeAdapter

from bench.chaos_agent import CARD
from bench.kolony_bench import _register_directly
from core import memory, messages, registry, tasks
from kolony.broker import EmbeddedKafka, free_port
from kolony.kafka import (
    client_options,
    consumer_options,
    ensure_topics,
    producer_options,
    read_backlog,
)
from kolony.settings import Settings
from schemas.a2a import Message, Part, TaskState
from schemas.ids import agent_id_for
from schemas.inbox import INBOX_ITEM
from schemas.memory import MEMORY_ENTRY, MEMORY_EVENT, SetMemory
from schemas.messages import MESSAGE_EVENT, MESSAGING_STATE, SendMessage
from schemas.registry import AGENT_EVENT, AGENT_STATE, RecordHeartbeat
from schemas.tasks import TASK_ENTRY, TASK_EVENT, TERMINAL_STATES, SubmitTask, UpdateTaskStatus
from schemas.topics import AGENTS_TABLE, MEMORY_TABLE, MESSAGING_TABLE, TASKS_TABLE
from tests.support.kafka_cluster import KafkaCluster
from tests.support.processes import KolonyProcess, wait_health

RESULTS = Path(__file__).parent / "results"
TARGETS = ("worker", "gateway", "agent", "broker")
SDK_CAPABILITY = "chaos-work"


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


def _text(text: str) -> Message:
    return Message(role="agent", parts=[Part(text=text)], message_id=str(uuid.uuid4()))


class Load:
    """Agents on Kafka at a steady rate; remembers each command the broker acknowledged and
    when each command's first decision event was seen."""

    def __init__(self, settings: Settings, agents: int, rate: float, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng
        self.agent_count = agents
        self.rate = rate
        self.agents: list[str] = []
        self.acknowledged: set[str] = set()
        self.acknowledged_at: dict[str, float] = {}
        self.sent_to: dict[str, tuple[str, int]] = {}  # command id -> topic, partition
        self.offsets: dict[str, int] = {}
        self.unacknowledged = 0
        self.tasks: set[str] = set()
        self.decided_at: dict[str, float] = {}
        self._producer = AIOKafkaProducer(**producer_options(settings), linger_ms=2)
        self._helpers: list[asyncio.Task[Any]] = []
        self._traffic: asyncio.Task[None] | None = None
        self._taken: set[str] = set()  # delivery ids acted upon (deliveries may repeat)
        self._reports: set[asyncio.Task[None]] = set()  # agents' reports being sent
        self.completed: set[str] = set()  # tasks whose completed report was acknowledged
        self.sdk_agent: str | None = None  # every eighth task goes to it, when there is one
        self.sdk_tasks: set[str] = set()
        self.registered: set[str] = set()  # agents whose registration was decided
        self.finished: dict[str, float] = {}  # task id -> when its terminal event was seen

    async def start(self) -> None:
        await self._producer.start()
        self.agents = [
            await _register_directly(self._producer, self.settings, f"chaos-{i}", "chaos")
            for i in range(self.agent_count)
        ]
        self._helpers = [
            asyncio.create_task(self._follow_decisions()),
            asyncio.create_task(self._work_inbox()),
            asyncio.create_task(self._heartbeat()),
        ]
        self._traffic = asyncio.create_task(self._steady())

    async def stop_traffic(self) -> None:
        await _cancel(self._traffic)

    async def quiesce(self) -> None:
        """No new commands: the traffic and the agents' work stop, reports in flight are sent."""
        await self.stop_traffic()
        self._helpers[1].cancel()  # the inbox: no task is taken any more
        await asyncio.gather(*self._reports, return_exceptions=True)

    async def stop(self) -> None:
        await self.quiesce()
        for helper in self._helpers:
            helper.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        await self._producer.stop()

    def check(self) -> None:
        """Raise what stopped a part of the load (it must not die quietly)."""
        for task in [*self._helpers, self._traffic]:
            if task is not None and task.done() and not task.cancelled():
                task.result()

    def decided(self) -> bool:
        return all(c in self.decided_at for c in self.acknowledged)

    def undecided(self) -> int:
        return sum(1 for c in self.acknowledged if c not in self.decided_at)

    def undecided_where(self) -> dict[str, int]:
        """Where the undecided commands wait: topic and partition, with how many."""
        where = Counter(
            f"{self.sent_to[c][0]}[{self.sent_to[c][1]}]"
            for c in self.acknowledged
            if c not in self.decided_at
        )
        return dict(where.most_common())

    def envelope(self) -> dict[str, Any]:
        return {"command_id": str(uuid.uuid4()), "issued_at": datetime.now(UTC)}

    async def send(self, topic: str, key: str, command: BaseModel, audited: bool = True) -> None:
        value = command.model_dump_json(exclude_none=True).encode()
        try:
            written = await self._producer.send_and_wait(topic, value, key=key.encode())
        except KafkaError:
            self.unacknowledged += 1  # the client was told it failed: not a promise
            return
        if audited:
            command_id: str = command.command_id  # type: ignore[attr-defined]
            self.sent_to[command_id] = (topic, written.partition)
            self.offsets[command_id] = written.offset
            self.acknowledged.add(command_id)
            self.acknowledged_at[command_id] = time.monotonic()

    async def _steady(self) -> None:
        topics = self.settings.topics
        async for i in _ticks(self.rate):
            sender, other = self.rng.sample(self.agents, 2)
            kind = i % 4
            if kind in (0, 1):
                task_id = f"chaos-{uuid.uuid4().hex[:12]}"
                self.tasks.add(task_id)
                sdk = self.sdk_agent is not None and i % 8 == 0
                if sdk:
                    self.sdk_tasks.add(task_id)
                command: BaseModel = SubmitTask(
                    **self.envelope(),
                    task_id=task_id,
                    assignee_id=self.sdk_agent if sdk else other,
                    requester_id=sender,
                    title=f"task {i}",
                    capability=SDK_CAPABILITY if sdk else None,
                )
                asyncio.create_task(self.send(topics.task_commands, task_id, command))
            elif kind == 2:
                command = SendMessage(
                    **self.envelope(), sender_id=sender, to=(other,), message=_text(f"m{i}")
                )
                asyncio.create_task(self.send(topics.message_commands, sender, command))
            else:
                key = f"chaos.{sender}.{i % 16}"
                command = SetMemory(**self.envelope(), key=key, value={"i": i}, agent_id=sender)
                asyncio.create_task(self.send(topics.memory_commands, key, command))

    async def _heartbeat(self) -> None:
        while True:
            for agent_id in self.agents:
                beat = RecordHeartbeat(**self.envelope(), agent_id=agent_id)
                await self.send(self.settings.topics.agent_commands, agent_id, beat, False)
            await asyncio.sleep(2.0)

    async def _follow_decisions(self) -> None:
        consumer = AIOKafkaConsumer(**consumer_options(self.settings), enable_auto_commit=False)
        await consumer.start()
        try:
            t = self.settings.topics
            events = (t.agent_events, t.task_events, t.message_events, t.memory_events)
            tps = [TopicPartition(e, p) for e in events for p in range(self.settings.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    now = time.monotonic()
                    for record in records:
                        event = json.loads(record.value)
                        command_id = event.get("command_id")
                        if command_id:
                            self.decided_at.setdefault(command_id, now)
                        if event.get("type") == "task.status_changed" and event.get("state") in {
                            s.value for s in TERMINAL_STATES
                        }:
                            self.finished.setdefault(event["task_id"], now)
                        if event.get("type") == "agent.registered":
                            self.registered.add(event["agent_id"])
        finally:
            await consumer.stop()

    async def _work_inbox(self) -> None:
        """Each agent takes the tasks delivered to it: working, then completed."""
        consumer = AIOKafkaConsumer(**consumer_options(self.settings), enable_auto_commit=False)
        await consumer.start()
        mine = set(self.agents)
        try:
            topic = self.settings.topics.agent_inbox
            tps = [TopicPartition(topic, p) for p in range(self.settings.inbox_partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        item = INBOX_ITEM.validate_json(record.value)
                        if item.type != "inbox.task_assigned" or item.delivery_id in self._taken:
                            continue
                        if item.agent_id not in mine:
                            continue
                        self._taken.add(item.delivery_id)
                        report = asyncio.create_task(self._do(item.agent_id, item.task.id))
                        self._reports.add(report)
                        report.add_done_callback(self._reports.discard)
        finally:
            await consumer.stop()

    async def _do(self, agent_id: str, task_id: str) -> None:
        topic = self.settings.topics.task_commands
        for state in (TaskState.WORKING, TaskState.COMPLETED):
            update = UpdateTaskStatus(
                **self.envelope(), task_id=task_id, state=state, agent_id=agent_id
            )
            await self.send(topic, task_id, update)
        self.completed.add(task_id)


class RestLoad:
    """Clients of the gateway: tasks (to the Kafka agents) and memory writes over REST, each
    request with an ``Idempotency-Key`` (the command's id) and retried with the same key,
    through the gateway's deaths, until it is answered. A 2xx answer is the acknowledgement
    the audit holds the hub to."""

    def __init__(self, load: Load, url: str, rate: float) -> None:
        self.load = load
        self.url = url
        self.rate = rate
        self.answered_at: list[float] = []  # when each 2xx answer came
        self.refused = 0  # 4xx: the hub said no (not a promise)
        self.abandoned = 0  # never answered within the client's patience
        self.abandoned_why: list[str] = []  # the last answer each abandoned request got
        self.abandoned_keys: set[str] = set()
        self.retries = 0
        self._calls: set[asyncio.Task[None]] = set()
        self._traffic: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(base_url=url, timeout=15)

    async def start(self) -> None:
        self._traffic = asyncio.create_task(self._steady())

    async def stop_traffic(self) -> None:
        await _cancel(self._traffic)

    async def settle(self, within: float) -> None:
        """Let the requests in flight finish (retrying), then close the client."""
        await self.stop_traffic()
        if self._calls:
            await asyncio.wait(self._calls, timeout=within)
        for call in self._calls:
            call.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        await self._client.aclose()

    async def _steady(self) -> None:
        load = self.load
        async for i in _ticks(self.rate):
            sender, other = load.rng.sample(load.agents, 2)
            if i % 2:
                body: dict[str, Any] = {
                    "title": f"rest task {i}",
                    "assignee_id": other,
                    "requester_id": sender,
                }
                call = self._call("POST", "/tasks", body, task=True)
            else:
                key = f"chaos.rest.{sender}.{i % 16}"
                call = self._call("PUT", f"/memory/{key}", {"value": {"i": i}, "agent_id": sender})
            task = asyncio.create_task(call)
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, method: str, path: str, body: Any, task: bool = False) -> None:
        key = str(uuid.uuid4())
        began = datetime.now(UTC)
        deadline = time.monotonic() + 180
        last = ""
        while time.monotonic() < deadline:
            try:
                answer = await self._client.request(
                    method, path, json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError:
                answer = None  # the gateway is down, or died while answering
            last = f"{answer.status_code} {answer.text[:300]}" if answer else "no answer"
            if answer is not None and answer.status_code < 500:
                if answer.status_code >= 400:
                    self.refused += 1
                    return
                now = time.monotonic()
                self.answered_at.append(now)
                self.load.acknowledged.add(key)
                self.load.acknowledged_at[key] = now
                self.load.sent_to[key] = ("rest " + path.split("/")[1], -1)
                self.load.offsets[key] = -1
                if task:
                    self.load.tasks.add(answer.json()["id"])
                return
            self.retries += 1
            await asyncio.sleep(0.5)
        self.abandoned += 1
        self.abandoned_keys.add(key)
        self.abandoned_why.append(
            f"{method} {path} (key {key}, tried {began:%H:%M:%S} to {datetime.now(UTC):%H:%M:%S}):"
            f" {last}"
        )


@dataclass
class ChaosReport:
    commands: int
    unacknowledged: int
    kills: int
    kills_by_target: dict[str, int]
    restarted_by_supervisor: dict[str, int]
    rest: dict[str, Any]
    resume_seconds: list[float]  # every kill's, in order
    resume_by_target: dict[str, list[float]]
    # Times the worker stopped making progress on a partition for 10 s with work waiting
    # while not recovering or rebalancing (its watchdog's commits, or its view's reads):
    # deciding that stalled although nothing was lost (a stalled commit makes every later
    # restart read the log back from further).
    stalls: int
    # Times a gateway found a partition of the event logs not moving with records waiting
    # (its fold re-reads it): it answers 503 for commands decided there meanwhile.
    gateway_stalls: int
    # Times the worker's watchdog found a partition with work waiting from which nothing was
    # fetched for 4 s, and fetched it again (docs/reliability.md, "Stalls").
    refetches: int
    # The warnings behind all three, and those of a worker that waited on its own recovery or
    # a rebalance (a slow resume, which the resume times measure).
    stall_lines: list[str]
    lost: int
    duplicated: int
    audit: dict[str, Any]
    seconds: float

    @property
    def resume_p99(self) -> float:
        """Of the time to resume deciding: after a worker's restart, or a broker's kill."""
        deciding = [s for t in ("worker", "broker") for s in self.resume_by_target.get(t, ())]
        return _p99(deciding)

    def by_target(self) -> str:
        return "; ".join(
            f"{target} p99 {_p99(seconds):.1f} s (max {max(seconds):.1f})"
            for target, seconds in self.resume_by_target.items()
            if seconds
        )

    def line(self) -> str:
        return (
            f"chaos: {self.commands} commands, {self.kills} kills, {self.lost} lost, "
            f"{self.duplicated} duplicated, resume p99 {self.resume_p99:.1f} s"
        )


def _p99(seconds: Sequence[float]) -> float:
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _stall_lines(workdir: Path, settings: Settings, role: str = "worker") -> list[str]:
    """The "no progress" warnings in a role's log, over every run of it: the worker's
    watchdog and view, or a gateway's log follower."""
    log = workdir / f"{settings.topic_prefix}.{role}.log"
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()
    marks = ("no progress on", "nothing fetched from")
    return [f"{role}: {line}" for line in lines if any(mark in line for mark in marks)]


def _stalled(lines: list[str], what: str = "no progress on") -> int:
    """Those of ``lines`` saying ``what`` that are not a worker waiting on its own recovery or
    a rebalance."""
    busy = ("in_recovery=True", "rebalancing=True")
    return sum(what in line and not any(mark in line for mark in busy) for line in lines)


async def run(
    base: Settings,
    workdir: Path,
    *,
    kills: int,
    targets: tuple[str, ...] = ("worker",),
    cluster: KafkaCluster | None = None,
    agents: int = 20,
    rate: float = 40.0,
    between: tuple[float, float] = (2.0, 6.0),
    down: tuple[float, float] = (0.2, 2.0),
    drain: float = 120.0,
    seed: int | None = None,
    worker_name: str | None = None,
    say: Any = print,
) -> ChaosReport:
    """Kill each of ``targets`` in turn, ``kills`` times in all, under load; then audit (see
    the module). Killing brokers needs ``cluster`` (three nodes: one may die)."""
    if unknown := set(targets) - set(TARGETS):
        raise ValueError(f"unknown targets {sorted(unknown)}; choose from {TARGETS}")
    if "broker" in targets and (cluster is None or len(cluster.nodes) < 3):
        raise ValueError("killing a broker needs a cluster of three")
    settings = base.model_copy(
        update={"topic_prefix": f"chaos{uuid.uuid4().hex[:6]}", "port": free_port()}
    )
    await ensure_topics(settings)
    roles = ["worker"] + [role for role in ("gateway", "agent") if role in targets]
    commands = {
        "worker": (["worker", "--log-level", "info"], "kolony"),
        "gateway": (["gateway", "--log-level", "info"], "kolony"),
        "agent": ([], "bench.chaos_agent"),
    }

    def spawn(role: str) -> KolonyProcess:
        args, module = commands[role]
        log = workdir / f"{settings.topic_prefix}.{role}.log"
        chosen = (
            settings.model_copy(update={"worker_name": worker_name})
            if role == "worker"
            else settings
        )
        return KolonyProcess(args, chosen, log, module=module).start()

    began = time.monotonic()
    running = {role: spawn(role) for role in roles}
    dead: set[str] = set()  # killed on purpose, not to be restarted by the supervisor
    restarted: Counter[str] = Counter()

    async def supervise() -> None:
        """What a supervisor (systemd, Kubernetes) does: start a process that died again."""
        while True:
            await asyncio.sleep(0.5)
            for role, process in list(running.items()):
                if role not in dead and process.process is not None and process.process.poll():
                    say(f"the {role} exited on its own ({process.process.returncode}); restarting")
                    restarted[role] += 1
                    running[role] = spawn(role)

    rng = random.Random(seed)  # noqa: S311 - timings, not secrets
    load = Load(settings, agents, rate, rng)
    url = f"http://127.0.0.1:{settings.port}"
    rest = RestLoad(load, url, rate / 4) if "gateway" in running else None
    supervisor = asyncio.create_task(supervise())
    resumes: list[float] = []
    resumes_of: dict[str, list[float]] = {target: [] for target in targets}
    kinds: Counter[str] = Counter()
    try:
        await load.start()
        await _until(lambda: len(load.decided_at) >= agents, 90, "the first worker to decide", load)
        if "agent" in running:
            sdk = agent_id_for(CARD.name, CARD.version)
            await _until(lambda: sdk in load.registered, 90, "the SDK agent to register", load)
            load.sdk_agent = sdk
        if rest is not None:
            await asyncio.to_thread(wait_health, url, 90)
            await rest.start()
        for k in range(kills):
            await asyncio.sleep(rng.uniform(*between))
            target = targets[k % len(targets)]
            kinds[target] += 1
            killed_at = time.monotonic()
            if target == "broker":
                assert cluster is not None
                node = rng.randrange(len(cluster.nodes))
                cluster.stop_node(node, kill=True)
                await asyncio.sleep(rng.uniform(*down))
                cluster.start_node(node)
                restarted_at = time.monotonic()
                await asyncio.to_thread(cluster.wait_ready, 90)
            else:
                dead.add(target)
                running[target].kill()
                await asyncio.sleep(rng.uniform(*down))
                restarted_at = time.monotonic()
                running[target] = spawn(target)
                dead.discard(target)
            resumed = partial(_resumed_after, target, load, rest, killed_at, restarted_at)
            await _until(resumed, 120, f"work to resume after kill {k + 1} ({target})", load)
            # A cluster works on without the killed broker: for it, the time from the kill.
            since = killed_at if target == "broker" else restarted_at
            resumes.append(resumed() - since)
            resumes_of[target].append(round(resumes[-1], 2))
            say(
                f"kill {k + 1}/{kills} ({target}): working again {resumes[-1]:.1f} s after "
                + ("the kill" if target == "broker" else "the restart")
            )
        await load.stop_traffic()
        if rest is not None:
            say("REST clients: finishing their requests in flight")
            await rest.settle(drain)
        say(f"draining: {load.undecided()} of {len(load.acknowledged)} commands undecided")
        with contextlib.suppress(TimeoutError):
            await _until(load.decided, drain, "every acknowledged command to be decided", load)
        with contextlib.suppress(TimeoutError):
            await _until(lambda: _all_finished(load), drain / 2, "every task to finish")
        say(f"tasks: {len(load.tasks & load.finished.keys())} of {len(load.tasks)} finished")
        await load.quiesce()
        with contextlib.suppress(TimeoutError):
            await _until(load.decided, drain, "the last reports to be decided")
        await load.stop()
        if "agent" in running:
            # The SDK agent heartbeats until it stops, and the worker decides a heartbeat
            # now and then: the audit must not read an event log and its changelog while
            # a decision is between the two.
            dead.add("agent")
            await asyncio.to_thread(running["agent"].terminate, 30)
        with contextlib.suppress(TimeoutError):
            await _until_async(partial(worker_settled, settings), drain, "the worker to commit")
        say(f"auditing: {load.undecided()} of {len(load.acknowledged)} undecided")
        if load.undecided():
            say(f"undecided, by partition: {load.undecided_where()}")
            sample = sorted(
                (load.sent_to[c], load.offsets[c])
                for c in load.acknowledged
                if c not in load.decided_at
            )[:20]
            say(f"undecided, some offsets: {sample}")
            worker = running["worker"].process
            if worker is not None:
                worker.send_signal(signal.SIGUSR1)  # the worker logs where it waits
                await asyncio.sleep(1)
        result = await audit(
            settings,
            set(load.acknowledged),
            set(load.tasks),
            frozenset(rest.abandoned_keys if rest is not None else ()),
        )
    finally:
        supervisor.cancel()
        with contextlib.suppress(Exception):
            await load.stop()
        if rest is not None:
            with contextlib.suppress(Exception):
                await rest.settle(0)
        for process in running.values():
            with contextlib.suppress(Exception):
                process.terminate(30)
    worker_stalls = _stall_lines(workdir, settings)
    gateway_stalls = _stall_lines(workdir, settings, "gateway")
    return ChaosReport(
        commands=result.commands,
        unacknowledged=load.unacknowledged,
        kills=kills,
        kills_by_target=dict(kinds),
        restarted_by_supervisor=dict(restarted),
        rest=(
            {"answered": len(rest.answered_at), "refused": rest.refused}
            | {"abandoned": rest.abandoned, "retries": rest.retries}
            | {"abandoned_why": rest.abandoned_why}
            if rest is not None
            else {}
        ),
        resume_seconds=[round(r, 2) for r in resumes],
        resume_by_target=resumes_of,
        stalls=_stalled(worker_stalls),
        gateway_stalls=_stalled(gateway_stalls),
        refetches=_stalled(worker_stalls, "nothing fetched from"),
        stall_lines=worker_stalls + gateway_stalls,
        lost=len(result.lost),
        duplicated=len(result.duplicated) + len(result.repeated_transitions),
        audit=asdict(result),
        seconds=round(time.monotonic() - began, 1),
    )


def _resumed_after(
    target: str,
    load: Load,
    rest: RestLoad | None,
    killed_at: float,
    restarted_at: float,
) -> float:
    """When the work the killed process does went on again (0: not yet): a command sent
    after the kill decided by the new worker (or, for a broker, by the cluster without it),
    a REST answer from the new gateway, a task finished by the new SDK agent."""
    if target == "gateway":
        assert rest is not None
        return min((at for at in rest.answered_at if at > restarted_at), default=0.0)
    if target == "agent":
        return min(
            (at for t, at in load.finished.items() if t in load.sdk_tasks and at > restarted_at),
            default=0.0,
        )
    if target == "broker":
        return _resumed(load, killed_at, killed_at)
    return _resumed(load, killed_at, restarted_at)


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _ticks(rate: float) -> AsyncIterator[int]:
    """1, 2, 3, … at ``rate`` a second, on a fixed schedule (a late tick does not delay
    the ones after it)."""
    began = time.monotonic()
    i = 0
    while True:
        i += 1
        await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
        yield i


def _resumed(load: Load, killed_at: float, restarted_at: float) -> float:
    """When the restarted worker first decided a command sent after the kill (0: not yet)."""
    return min(
        (
            load.decided_at[c]
            for c, at in load.acknowledged_at.items()
            if at > killed_at and load.decided_at.get(c, 0.0) > restarted_at
        ),
        default=0.0,
    )


def _all_finished(load: Load) -> bool:
    """Every task finished (its terminal event seen), and every command decided."""
    return load.tasks <= load.finished.keys() and load.decided()


async def worker_settled(settings: Settings) -> bool:
    """Whether the worker has committed every command there is: each decided, and its
    events and states written (it commits a command only after both)."""
    t = settings.topics
    topics = (t.agent_commands, t.task_commands, t.message_commands, t.memory_commands)
    tps = [TopicPartition(topic, p) for topic in topics for p in range(settings.partitions)]
    admin = AIOKafkaAdminClient(**client_options(settings))
    consumer = AIOKafkaConsumer(**consumer_options(settings), enable_auto_commit=False)
    await admin.start()
    try:
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        committed = await admin.list_consumer_group_offsets(t.app_id)
    finally:
        await admin.close()
    return all(
        ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp]) for tp in tps
    )


async def _until_async(done: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)  # noqa: ASYNC110 - polling another process's progress


async def _until(done: Any, within: float, what: str, load: Load | None = None) -> None:
    deadline = time.monotonic() + within
    while not done():
        if load is not None:
            load.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)  # noqa: ASYNC110 - polling other processes' progress


async def main(args: argparse.Namespace) -> int:
    # The clients' complaints about brokers and processes killed on purpose are expected.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    workdir = Path(tempfile.mkdtemp(prefix="kolony-chaos-"))
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    bootstrap = os.environ.get("KOLONY_BOOTSTRAP_SERVERS")
    broker: EmbeddedKafka | None = None
    cluster: KafkaCluster | None = None
    if "broker" in targets:
        cluster = KafkaCluster(3, heap_mb=384)
        bootstrap = await asyncio.to_thread(cluster.start)
    elif not bootstrap:
        broker = EmbeddedKafka(workdir / "kafka", 0)
        bootstrap = await asyncio.to_thread(broker.start)
    settings = Settings(
        bootstrap_servers=bootstrap,
        data_dir=workdir / "data",
        session_timeout=6,
        beacon_interval=0.5,
        replication_factor=3 if cluster is not None else 1,
    )
    try:
        report = await run(
            settings,
            workdir,
            kills=args.kills,
            targets=targets,
            cluster=cluster,
            agents=args.agents,
            rate=args.rate,
            seed=args.seed,
            worker_name=args.worker_name or None,
            say=lambda line: print(line, file=sys.stderr),
        )
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        if cluster is not None:
            await asyncio.to_thread(cluster.stop)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    (RESULTS / f"chaos-{stamp}.json").write_text(json.dumps(asdict(report), indent=2))
    print(
        f"resume by target: {report.by_target()}; worker stalled {report.stalls}×, "
        f"fetched again {report.refetches}×, gateway reads {report.gateway_stalls}×"
    )
    print(report.line())
    return 0 if report.lost == 0 and report.duplicated == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="what to kill, in turn: worker, gateway, agent, broker (a three-node cluster)",
    )
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=float, default=40.0, help="commands a second")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's timings")
    parser.add_argument(
        "--worker-name",
        default="chaos-worker",
        help="the worker's KOLONY_WORKER_NAME (static membership; '' for none)",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
