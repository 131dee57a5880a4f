"""Kolony under load: heartbeats decided per second, and POST /agents latency."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.stats import Latency
from core.ids import agent_id_for
from kolony.settings import Settings
from schemas.a2a import AgentCard
from schemas.registry import RecordHeartbeat, RegisterAgent
from schemas.system import WORKER_BEACON, WorkerBeacon


class Beacons:
    """Follows the workers' beacons: their cumulative count of decided commands."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.latest: dict[str, WorkerBeacon] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
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
            response = await client.post("/agents", json=card)
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures += 1

        for i in range(50):  # warm up connections and the worker
            await one(i)
        latencies.clear()
        tasks = []
        total = int(rate * seconds)
        begin = time.perf_counter()
        for i in range(total):
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return Latency.of(latencies), failures
