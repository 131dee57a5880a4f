"""Kolony under load: heartbeats and task commands decided per second, POST /agents latency,
and the delegation round trip."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.stats import Latency
from kolony.partitioning import partition_for
from kolony.settings import Settings
from schemas.a2a import AgentCard, AgentSkill, TaskState
from schemas.ids import agent_id_for
from schemas.inbox import INBOX_ITEM, InboxItem
from schemas.registry import RecordHeartbeat, RegisterAgent
from schemas.system import WORKER_BEACON, WorkerBeacon
from schemas.tasks import SubmitTask, UpdateTaskStatus


class Beacons:
    """Follows the workers' beacons: their cumulative count of decided commands."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.latest: dict[str, WorkerBeacon] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            isolation_level="read_committed",  # as agents read: what a worker committed
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        tp = TopicPartition(self.settings.topics.system, 0)
        self._consumer.assign([tp])
        await self._consumer.seek_to_end(tp)
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            for records in (await self._consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    beacon = WORKER_BEACON.validate_json(record.value)
                    self.latest[beacon.worker_id] = beacon

    async def wait_for_worker(self, within: float) -> None:
        deadline = time.monotonic() + within
        while not self.latest:
            if time.monotonic() > deadline:
                raise TimeoutError("no worker beacon")
            await asyncio.sleep(0.1)  # noqa: ASYNC110 - polling another process's beacons

    def decided(self) -> int:
        return sum(b.commands_decided for b in self.latest.values())

    async def wait_decided(self, at_least: int, within: float) -> float:
        deadline = time.monotonic() + within
        while self.decided() < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers decided {self.decided()} of {at_least} commands")
            await asyncio.sleep(0.02)
        return time.perf_counter()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()


async def heartbeats_per_second(
    settings: Settings, agents: int, heartbeats: int
) -> tuple[float, float]:
    """Register ``agents``, then publish ``heartbeats`` heartbeats among them as fast as
    possible; returns (decided per second, published per second)."""
    beacons = Beacons(settings)
    await beacons.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    topic = settings.topics.agent_commands
    now = datetime.now(UTC)
    ids = [agent_id_for(f"bench-{i}", "1") for i in range(agents)]
    try:
        await beacons.wait_for_worker(60)
        base = beacons.decided()
        for i, agent_id in enumerate(ids):
            command = RegisterAgent(
                command_id=str(uuid.uuid4()),
                issued_at=now,
                agent_id=agent_id,
                card=AgentCard(name=f"bench-{i}", version="1"),
                ttl_seconds=600,
            )
            await producer.send(
                topic, command.model_dump_json(exclude_none=True).encode(), key=agent_id.encode()
            )
        await producer.flush()
        await beacons.wait_decided(base + agents, 120)

        encoded = [
            (
                a.encode(),
                RecordHeartbeat(command_id=str(uuid.uuid4()), issued_at=now, agent_id=a)
                .model_dump_json(exclude_none=True)
                .encode(),
            )
            for a in ids
        ]
        base = beacons.decided()
        started = time.perf_counter()
        pending = []
        for i in range(heartbeats):
            key, value = encoded[i % agents]
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        published = heartbeats / (time.perf_counter() - started)
        finished = await beacons.wait_decided(base + heartbeats, 300)
        # The beacon lags the work by up to one interval: count that against the worker.
        return heartbeats / (finished - started), published
    finally:
        await producer.stop()
        await beacons.stop()


async def register_latency(
    url: str, rate: float, seconds: float, distinct: int
) -> tuple[Latency, int]:
    """POST /agents at ``rate`` per second (open loop); registrations cycle over ``distinct``
    cards, so most are renewals. Returns the latency and the count of non-200 answers."""
    latencies: list[float] = []
    failures = 0
    async with httpx.AsyncClient(
        base_url=url, timeout=10, limits=httpx.Limits(max_connections=64)
    ) as client:

        async def one(i: int) -> None:
            nonlocal failures
            card = {
                "name": f"latency-{i % distinct}",
                "version": "1.0.0",
                "skills": [{"id": "bench", "name": "Bench", "tags": ["bench"]}],
            }
            started = time.perf_counter()
            try:
                response = await client.post("/agents", json=card)
            except httpx.HTTPError:  # counted, as a user would count it
                failures += 1
                return
            if response.status_code in (200, 201):  # renewed, registered
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures += 1

        for i in range(50):  # warm up connections and the worker
            await one(i)
        latencies.clear()
        failures = 0
        tasks = []
        total = int(rate * seconds)
        begin = time.perf_counter()
        for i in range(total):
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return Latency.of(latencies), failures


class InboxReader:
    """One agent's partition of the inbox, as an agent reads it (docs/protocol.md)."""

    def __init__(self, settings: Settings, agent_id: str) -> None:
        self.settings = settings
        self.key = agent_id.encode()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            isolation_level="read_committed",  # as agents read: what a worker committed
        )

    async def start(self) -> None:
        await self.consumer.start()
        n = self.settings.inbox_partitions
        tp = TopicPartition(self.settings.topics.agent_inbox, partition_for(self.key, n))
        self.consumer.assign([tp])
        await self.consumer.seek_to_end(tp)
        await self.consumer.position(tp)

    async def items(self) -> AsyncIterator[InboxItem]:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if record.key == self.key:
                        yield INBOX_ITEM.validate_json(record.value)


async def _register_directly(
    producer: AIOKafkaProducer, settings: Settings, name: str, skill: str
) -> str:
    agent_id = agent_id_for(name, "1")
    card = AgentCard(name=name, version="1", skills=[AgentSkill(id=skill, name=skill)])
    command = RegisterAgent(
        command_id=str(uuid.uuid4()),
        issued_at=datetime.now(UTC),
        agent_id=agent_id,
        card=card,
        ttl_seconds=600,
    )
    await producer.send_and_wait(
        settings.topics.agent_commands,
        command.model_dump_json(exclude_none=True).encode(),
        key=agent_id.encode(),
    )
    return agent_id


class Delegations:
    """Agents speaking Kafka directly: a requester submits tasks for a capability; the agent
    with it receives each from its inbox and completes it; a task's time runs from
    submitting it until the requester's inbox says ``completed``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self._producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
        self._helpers: list[asyncio.Task[None]] = []
        self._readers: list[InboxReader] = []
        self.requester = ""
        self.worker = ""

    async def __aenter__(self) -> Delegations:
        settings, producer = self.settings, self._producer
        await producer.start()
        self.requester = await _register_directly(producer, settings, "bench-requester", "ask")
        self.worker = await _register_directly(producer, settings, "bench-worker", "bench-work")
        self._readers = [InboxReader(settings, self.requester), InboxReader(settings, self.worker)]
        for reader in self._readers:
            await reader.start()
        self._helpers = [asyncio.create_task(self._work()), asyncio.create_task(self._observe())]
        # Warm up: until tasks come back (the worker's view has seen both agents), then 50 more.
        first = await self.submit(0)
        await self.until(lambda: first in self.finished, 60)
        warm = [await self.submit(i) for i in range(50)]
        await self.until(lambda: all(t in self.finished for t in warm), 60)
        self.started.clear()
        self.finished.clear()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for helper in self._helpers:
            helper.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        for reader in self._readers:
            await reader.consumer.stop()
        await self._producer.stop()

    async def _send(self, topic: str, key: str, command: Any) -> None:
        await self._producer.send_and_wait(
            topic, command.model_dump_json(exclude_none=True).encode(), key=key.encode()
        )

    async def _work(self) -> None:
        async for item in self._readers[1].items():
            if item.type == "inbox.task_assigned":
                done = UpdateTaskStatus(
                    command_id=str(uuid.uuid4()),
                    issued_at=datetime.now(UTC),
                    task_id=item.task.id,
                    state=TaskState.COMPLETED,
                    agent_id=self.worker,
                    result={"ok": True},
                )
                await self._send(self.settings.topics.task_commands, item.task.id, done)

    async def _observe(self) -> None:
        async for item in self._readers[0].items():
            if item.type == "inbox.task_updated" and item.task.status.state == "completed":
                self.finished.setdefault(item.task.id, time.perf_counter())

    async def submit(self, i: int) -> str:
        task_id = f"bench-{uuid.uuid4().hex}"
        command = SubmitTask(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            task_id=task_id,
            capability="bench-work",
            requester_id=self.requester,
            title=f"task {i}",
        )
        self.started[task_id] = time.perf_counter()
        await self._send(self.settings.topics.task_commands, task_id, command)
        return task_id

    async def until(self, done: Any, within: float) -> None:
        deadline = time.monotonic() + within
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.finished)} of {len(self.started)} tasks came back")
            await asyncio.sleep(0.05)  # noqa: ASYNC110 - waiting on other tasks' results

    def latencies(self, since: float = 0.0, before: float = float("inf")) -> Latency:
        """Round trips of the tasks submitted in [since, before) (perf_counter times)."""
        return Latency.of(
            [
                (self.finished[t] - at) * 1000
                for t, at in self.started.items()
                if since <= at < before and t in self.finished
            ]
        )


async def paced(rate: float, seconds: float, act: Any) -> None:
    """Open loop: ``act(i)`` ``rate`` times a second for ``seconds``, each in its own task."""
    total = int(rate * seconds)
    begin = time.perf_counter()
    sends = []
    for i in range(total):
        await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
        sends.append(asyncio.create_task(act(i)))
    await asyncio.gather(*sends)


async def delegation_round_trip(settings: Settings, rate: float, seconds: float) -> Latency:
    """Delegations submitted at ``rate`` per second (open loop) for ``seconds``."""
    async with Delegations(settings) as tasks:
        await paced(rate, seconds, tasks.submit)
        with contextlib.suppress(TimeoutError):  # a backlog is reported, not fatal
            await tasks.until(lambda: len(tasks.finished) >= len(tasks.started), 180)
        return tasks.latencies()


async def task_commands_per_second(settings: Settings, tasks: int) -> tuple[float, float]:
    """Publish ``tasks`` submissions (each pinned to an agent, so each is delivered), then a
    completion for each, as fast as possible; returns (decided per second, published per
    second), counting both kinds of command."""
    beacons = Beacons(settings)
    await beacons.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    topic = settings.topics.task_commands
    now = datetime.now(UTC)
    assignee = agent_id_for("bench-worker", "1")
    ids = [f"load-{uuid.uuid4().hex}" for _ in range(tasks)]
    envelope = {"issued_at": now, "issued_by": "bench"}
    encoded = [
        (t.encode(), SubmitTask(command_id=f"s-{t}", task_id=t, assignee_id=assignee, **envelope))
        for t in ids
    ] + [
        (
            t.encode(),
            UpdateTaskStatus(
                command_id=f"c-{t}", task_id=t, state=TaskState.COMPLETED, result=1, **envelope
            ),
        )
        for t in ids
    ]
    payloads = [(k, c.model_dump_json(exclude_none=True).encode()) for k, c in encoded]
    try:
        await beacons.wait_for_worker(60)
        await _register_directly(producer, settings, "bench-worker", "bench-work")
        await asyncio.sleep(1)  # for the worker's view to see it online
        base = beacons.decided()
        started = time.perf_counter()
        pending = []
        for key, value in payloads:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        published = len(payloads) / (time.perf_counter() - started)
        finished = await beacons.wait_decided(base + len(payloads), 300)
        return len(payloads) / (finished - started), published
    finally:
        await producer.stop()
        await beacons.stop()
