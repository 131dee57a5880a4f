"""The floor: raw aiokafka throughput and round-trip latency on the same broker."""

from __future__ import annotations

import asyncio
import contextlib
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


async def tail_latency_by_history(
    bootstrap: str, history: tuple[int, ...], fetch_max_wait_ms: int, rate: float = 100.0
) -> list[tuple[int, Latency]]:
    """For each ``n`` in ``history``: a partition already holding ``n`` one-record batches,
    then 200 records at ``rate`` per second, each timed until a consumer at the end of the
    partition has it. Records not there 5 s after the last one are left out of the count.

    Every record an agent or a worker sends on its own is one record batch; this measures
    what a partition's history costs a reader on the broker under test.
    """
    results = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for n in history:
            topic = await _topic(bootstrap, 1)
            tp = TopicPartition(topic, 0)
            pending = []
            for _ in range(n):
                batch = producer.create_batch()
                batch.append(key=None, value=PAYLOAD, timestamp=None)
                pending.append(await producer.send_batch(batch, topic, partition=0))
            await asyncio.gather(*pending)
            results.append((n, await _tail(bootstrap, producer, tp, rate, fetch_max_wait_ms)))
    finally:
        await producer.stop()
    return results


async def _tail(
    bootstrap: str, producer: AIOKafkaProducer, tp: TopicPartition, rate: float, wait_ms: int
) -> Latency:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms, enable_auto_commit=False
    )
    await consumer.start()
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    await consumer.position(tp)
    count = 200
    sent: dict[bytes, float] = {}
    got: dict[bytes, float] = {}
    all_there = asyncio.Event()

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                now = time.perf_counter()
                for record in records:
                    got.setdefault(record.value or b"", now)
            if len(got) >= count:
                all_there.set()

    reader = asyncio.create_task(read())
    try:
        for i in range(count):
            value = f"tail-{i}".encode()
            sent[value] = time.perf_counter()
            await producer.send_and_wait(tp.topic, value, partition=tp.partition)
            await asyncio.sleep(1 / rate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_there.wait(), 5)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
    return Latency.of([(got[v] - t) * 1000 for v, t in sent.items() if v in got])
