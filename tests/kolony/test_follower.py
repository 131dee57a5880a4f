"""Log followers (kolony/follower.py): the collector paused while they fold their backlog,
and a partition their fetch lost read again."""

from __future__ import annotations

import gc

import pytest
from aiokafka import TopicPartition

from kolony.follower import STUCK_AFTER, LogFollower, _CyclicGC
from kolony.settings import Settings


def test_paused_until_the_last_follower_caught_up() -> None:
    collector = _CyclicGC()
    assert gc.isenabled()
    try:
        collector.hold()
        collector.hold()  # two followers folding at once (a hub and a worker's view)
        assert not gc.isenabled()
        collector.release()
        assert not gc.isenabled()
        collector.release()
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    collector = _CyclicGC()
    gc.disable()
    try:
        collector.hold()
        collector.release()
        assert not gc.isenabled()
    finally:
        gc.enable()


class StuckConsumer:
    """A consumer whose fetch lost one partition: its position stays short of the end."""

    def __init__(self) -> None:
        self.tp = TopicPartition("kolony.memory.events", 3)
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 120)

    async def position(self, tp: TopicPartition) -> int:
        return 100

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


async def test_a_partition_that_stops_short_of_its_end_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    follower = LogFollower(Settings(), ["kolony.memory.events"], lambda topic, records: None)
    consumer = StuckConsumer()
    follower._consumer = consumer  # type: ignore[assignment]
    clock = [1_000.0]
    monkeypatch.setattr("kolony.follower.time.monotonic", lambda: clock[0])
    await follower._check_progress()
    clock[0] += STUCK_AFTER - 1
    await follower._check_progress()
    assert consumer.seeks == [] and follower.stalls == 0  # not for long enough yet
    clock[0] += 2
    await follower._check_progress()
    assert consumer.seeks == [(consumer.tp, 100)] and follower.stalls == 1
