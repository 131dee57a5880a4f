"""Log followers (kolony/follower.py): the collector paused while they fold their backlog,
a partition their fetch lost read again, a fold that fails, and a stop that cannot hang."""

from __future__ import annotations

import asyncio
import gc
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from kolony.follower import CLOSE_TIMEOUT, STUCK_AFTER, LogFollower, _cancel, _CyclicGC
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


class Feed:
    """A consumer handing out two batches of one partition, then nothing."""

    def __init__(self) -> None:
        self.tp = TopicPartition("kolony.memory.events", 0)
        self.batches = [
            {self.tp: [SimpleNamespace(offset=0, value=b"bad")]},
            {self.tp: [SimpleNamespace(offset=1, value=b"good")]},
        ]

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}


async def test_a_fold_that_fails_is_logged_and_reading_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    folded: list[bytes] = []

    def fold(topic: str, records: Any) -> None:
        if records[0].value == b"bad":
            raise KeyError("a bug in a fold")
        folded.extend(record.value for record in records)

    follower = LogFollower(Settings(), ["kolony.memory.events"], fold)
    follower._consumer = Feed()  # type: ignore[assignment]
    follower.caught_up.set()
    reading = asyncio.create_task(follower._read())
    for _ in range(100):
        if folded:
            break
        await asyncio.sleep(0.01)
    await _cancel([reading], "test")
    assert folded == [b"good"]
    assert "folding 1 records of" in caplog.text and "from offset 0 failed" in caplog.text


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        for _ in range(3):  # as asyncio.wait_for does on Python 3.11 when the call just ended
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                swallowed += 1
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await _cancel([task], "test")
    assert task.cancelled() and swallowed == 3


async def test_a_task_that_never_stops_does_not_hang_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard = False

    async def deaf() -> None:
        while not heard:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    started = time.monotonic()
    await _cancel([task], "test")
    assert time.monotonic() - started < CLOSE_TIMEOUT + 1
    assert "did not stop when cancelled" in caplog.text
    heard = True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
