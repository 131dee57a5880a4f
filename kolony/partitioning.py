"""Which partition owns a key: Kafka's default (murmur2) partitioner, as every Java client uses."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


# murmur2 is pure Python in aiokafka (~7 us); a worker sees the same agent keys over and over.
@lru_cache(maxsize=262_144)
def partition_for(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
