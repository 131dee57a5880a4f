"""How long `kolony up` takes: from nothing to a healthy hub (Kafka's jars and its start-up
cache already in the user cache, a new data directory), and a restart with a long log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kolony.broker import free_port
from schemas.a2a import AgentCard
from schemas.ids import agent_id_for
from schemas.registry import RegisterAgent
from schemas.topics import Topics


@dataclass(frozen=True)
class Startup:
    cold_s: float  # launch to /health ok, new data directory
    events: int  # events in the log at the restart
    restart_s: float  # launch to /health ok, with those events to fold


class Up:
    """One `kolony up` process on a data directory."""

    def __init__(self, data: Path, port: int, log: Path) -> None:
        self.data, self.port, self.log = data, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Launch and wait for /health to answer 200; the seconds that took."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOLONY_")}
        env.update(KOLONY_DATA_DIR=str(self.data), KOLONY_KAFKA_PORT="0", PYTHONUNBUFFERED="1")
        started = time.perf_counter()
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kolony", "up", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.perf_counter() - started > 300:
                raise RuntimeError(f"kolony up did not get healthy; see {self.log}")
            time.sleep(0.05)

    def bootstrap(self) -> str:
        return str(httpx.get(f"{self.url}/system/info").json()["kafka"]["bootstrap_servers"])

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(120)


async def fill(bootstrap: str, events: int, agents: int = 1_000) -> int:
    """Renew ``agents`` agents until the agents' event log holds ``events`` events (each
    registration or renewal is one); returns how many it holds."""
    topics = Topics()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await producer.start()
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topics.agent_events, p)
            for p in await producer.partitions_for(topics.agent_events)
        ]

        async def held() -> int:
            return sum((await consumer.end_offsets(partitions)).values())

        pending = []
        for i in range(events):
            n = i % agents
            agent_id = agent_id_for(f"bench-log-{n}", "1")
            command = RegisterAgent(
                command_id=str(uuid.uuid4()),
                issued_at=datetime.now(UTC),
                agent_id=agent_id,
                card=AgentCard(name=f"bench-log-{n}", version="1", description=f"renewal {i}"),
                ttl_seconds=86_400,
            )
            value = command.model_dump_json(exclude_none=True).encode()
            pending.append(await producer.send(topics.agent_commands, value, key=agent_id.encode()))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        deadline = time.monotonic() + 600
        while (count := await held()) < events and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the broker
            await asyncio.sleep(1)
        return count
    finally:
        await consumer.stop()
        await producer.stop()


async def cold_start_and_restart(workdir: Path, events: int) -> Startup:
    up = Up(workdir / "up-data", free_port(), workdir / "up.log")
    try:
        cold = await asyncio.to_thread(up.start)
        held = await fill(await asyncio.to_thread(up.bootstrap), events)
    finally:
        await asyncio.to_thread(up.stop)
    try:
        restart = await asyncio.to_thread(up.start)
    finally:
        await asyncio.to_thread(up.stop)
    return Startup(round(cold, 2), held, round(restart, 2))
