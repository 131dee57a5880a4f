"""The floor for a relayed message: a bare aiokafka process that copies every record of one
topic to another, with the worker's client settings and none of Kolony's work.

A hop is one trip through the broker (produced, then consumed). A Kolony direct message
takes two (sender → worker → recipient's inbox), a delegation four (requester → worker →
assignee's inbox; assignee → worker → requester's inbox). A chain of ``hops - 1`` relays
between a producer and a consumer takes as many. ``python -m bench.relay BOOTSTRAP SOURCE
TARGET TARGET_PARTITIONS FETCH_WAIT_MS`` runs one relay in its own process, as the worker
runs in its own.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from kolony.partitioning import partition_for


async def relay(
    bootstrap: str, source: str, target: str, target_partitions: int, fetch_wait_ms: int
) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"{source}.relay",
        fetch_max_wait_ms=fetch_wait_ms,
        auto_offset_reset="latest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await consumer.start()
    await producer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=1_000, max_records=2_000)
            # One record batch per target partition, as the worker sends a decided batch.
            groups: dict[int, list[tuple[bytes | None, bytes | None]]] = defaultdict(list)
            for records in fetched.values():
                for record in records:
                    key = record.key or b""
                    groups[partition_for(key, target_partitions)].append((record.key, record.value))
            for partition, items in groups.items():
                batch = producer.create_batch()
                for key, value in items:
                    if batch.append(timestamp=None, key=key, value=value) is None:
                        await producer.send_batch(batch, target, partition=partition)
                        batch = producer.create_batch()
                        batch.append(timestamp=None, key=key, value=value)
                await producer.send_batch(batch, target, partition=partition)
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    bootstrap, source, target, partitions, wait = sys.argv[1:6]
    asyncio.run(relay(bootstrap, source, target, int(partitions), int(wait)))
