"""The floor: raw aiokafka throughput and round-trip latency on the same broker."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.stats import Latency

PAYLOAD = b'{"type":"agent.heartbeat","agent_id":"bench-agent-0001","command_id":"0"}' + b" " * 40


async def _topic(bootstrap: str, partitions: int) -> str:
    name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def throughput(bootstrap: str, messages: int, partitions: int) -> tuple[float, float]:
    """(produced msg/s, consumed msg/s) for ``messages`` records of ~110 bytes."""
    topic = await _topic(bootstrap, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    pending = []
    for i in range(messages):
        pending.append(await producer.send(topic, PAYLOAD, key=f"k{i % 1000}".encode()))
        if len(pending) >= 5_000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    produced = messages / (time.perf_counter() - started)
    await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    while seen < messages:
        batches = await consumer.getmany(timeout_ms=1_000, max_records=10_000)
        seen += sum(len(b) for b in batches.values())
    consumed = messages / (time.perf_counter() - started)
    await consumer.stop()
    return produced, consumed


async def round_trip(bootstrap: str, samples: int, rate: float, fetch_max_wait_ms: int) -> Latency:
    """Produce one record, consume it; ``samples`` times at ``rate`` per second."""
    topic = await _topic(bootstrap, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=fetch_max_wait_ms, enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    latencies = []
    for _ in range(samples):
        started = time.perf_counter()
        await producer.send(topic, PAYLOAD)
        while not await consumer.getmany(tp, timeout_ms=5_000):
            pass
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    await producer.stop()
    await consumer.stop()
    return Latency.of(latencies)
