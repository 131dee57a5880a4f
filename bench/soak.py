"""A long run at a steady load: does latency stay where it started as the log grows?

200 agents heartbeat (200 heartbeats a second in all) while a requester delegates 20 tasks a
second; the delegation round trip is reported minute by minute, so the last minute can be
set beside the first (on the previous embedded broker, reads slowed with every record batch
a partition held: that cliff must be gone).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from bench.kolony_bench import Delegations, _register_directly, paced
from bench.stats import Latency
from kolony.settings import Settings
from schemas.registry import RecordHeartbeat


@dataclass(frozen=True)
class Minute:
    minute: int
    delegation: Latency


async def soak(
    settings: Settings,
    minutes: float,
    heartbeat_rate: float = 200.0,
    task_rate: float = 20.0,
    agents: int = 200,
) -> list[Minute]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=2)
    await producer.start()
    ids = [
        await _register_directly(producer, settings, f"bench-soak-{i}", "soak")
        for i in range(agents)
    ]
    topic = settings.topics.agent_commands

    async def heartbeat(i: int) -> None:
        agent_id = ids[i % len(ids)]
        command = RecordHeartbeat(
            command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), agent_id=agent_id
        )
        await producer.send_and_wait(
            topic, command.model_dump_json(exclude_none=True).encode(), key=agent_id.encode()
        )

    seconds = minutes * 60
    try:
        async with Delegations(settings) as tasks:
            # The delegating pair heartbeats too (it would go offline after its TTL).
            ids += [tasks.requester, tasks.worker]
            begin = time.perf_counter()
            await asyncio.gather(
                paced(heartbeat_rate, seconds, heartbeat), paced(task_rate, seconds, tasks.submit)
            )
            await tasks.until(lambda: len(tasks.finished) >= len(tasks.started), 180)
            return [
                Minute(m + 1, tasks.latencies(begin + 60 * m, begin + 60 * (m + 1)))
                for m in range(int(minutes + 0.999))
            ]
    finally:
        await producer.stop()


def report(rows: list[Minute]) -> str:
    lines = ["| minute | delegations | p50 | p99 | max |", "|---|---|---|---|---|"]
    for row in rows:
        d = row.delegation
        lines.append(
            f"| {row.minute} | {d.count} | {d.p50_ms:.2f} ms | {d.p99_ms:.2f} ms "
            f"| {d.max_ms:.2f} ms |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # a soak on its own: python -m bench.soak BOOTSTRAP PREFIX MINUTES
    bootstrap, prefix, minutes = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rows = asyncio.run(soak(Settings(bootstrap_servers=bootstrap, topic_prefix=prefix), minutes))
    print(report(rows))  # noqa: T201
