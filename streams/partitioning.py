"""Which partition owns a key: Kafka's default (murmur2) partitioner, as every Java client uses."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
