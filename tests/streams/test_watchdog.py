"""The worker's watchdog (streams/watchdog.py): a partition nothing is fetched from is fetched
again after a few seconds, one whose commits stopped after ten, and a busy one is left alone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from faust.types import TP

from streams.watchdog import STARVED_AFTER, STUCK_AFTER, Watchdog

TOPIC = "kolony.tasks.commands"


class FetchResult:
    """Records the client fetched (named as aiokafka names them)."""


class FetchError:
    """An error the client fetched in place of records."""


class Consumer:
    """What the watchdog reads of Faust's consumer and of the Kafka client under it."""

    def __init__(self, tp: TP, committed: int, end: int, fetched_to: int) -> None:
        self.tp = tp
        self._committed_offset = {tp: committed}
        self._read_offset = {tp: committed}
        self._paused_partitions: set[TP] = set()
        self._buffered_partitions: set[TP] = set()
        self.end = end
        self.state = SimpleNamespace(paused=False, position=fetched_to, has_valid_position=True)
        self.waiting: dict[TP, object] = {}  # records fetched, not handed to Faust yet
        self.fail = False
        fetcher = SimpleNamespace(
            _subscriptions=SimpleNamespace(
                subscription=SimpleNamespace(
                    assignment=SimpleNamespace(state_value=lambda tp: self.state)
                )
            ),
            _records=self.waiting,
            _in_flight=set(),
            _fetch_task=SimpleNamespace(done=lambda: False),
        )
        client = SimpleNamespace(
            _fetcher=fetcher,
            _client=SimpleNamespace(cluster=SimpleNamespace(leader_for_partition=lambda tp: 1)),
        )
        self._thread = SimpleNamespace(_ensure_consumer=lambda: client)
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return {self.tp}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        if self.fail:
            raise KafkaConnectionError("the broker went away")
        return dict.fromkeys(tps, self.end)

    def _get_active_partitions(self) -> set[TP]:
        return {self.tp}

    def resume_partitions(self, tps: set[TP]) -> None:
        pass

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self._read_offset[tp] = offset


def watchdog(consumer: Consumer, busy: bool = False) -> Watchdog:
    app = SimpleNamespace(
        consumer=consumer,
        in_recovery=busy,
        rebalancing=False,
        flow_control=SimpleNamespace(is_active=lambda: True),
    )
    return Watchdog(app, [TOPIC])


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1_000.0]
    monkeypatch.setattr("streams.watchdog.time.monotonic", lambda: now[0])
    return now


async def checks(dog: Watchdog, clock: list[float], seconds: float) -> None:
    """Check now, then every second for ``seconds``."""
    await dog.check()
    for _ in range(int(seconds)):
        clock[0] += 1
        await dog.check()


async def test_a_partition_nothing_is_fetched_from_is_fetched_again(
    clock: list[float], caplog: Any
) -> None:
    tp = TP(TOPIC, 3)
    consumer = Consumer(tp, committed=30, end=38, fetched_to=30)
    dog = watchdog(consumer)
    await checks(dog, clock, STARVED_AFTER - 1)
    assert consumer.seeks == []
    clock[0] += 1
    await dog.check()
    assert consumer.seeks == [(tp, 30)] and dog.stuck == {tp}
    assert (
        "nothing fetched from" in caplog.text and "fetcher={paused=False position=30" in caplog.text
    )


async def test_a_partition_fetched_but_not_committed_waits_for_the_commit_check(
    clock: list[float], caplog: Any
) -> None:
    tp = TP(TOPIC, 1)
    consumer = Consumer(tp, committed=30, end=38, fetched_to=38)  # fetched, being decided
    consumer._read_offset[tp] = 37
    dog = watchdog(consumer)
    await checks(dog, clock, STUCK_AFTER - 1)
    assert consumer.seeks == []
    clock[0] += 1
    await dog.check()
    assert consumer.seeks == [(tp, 30)] and "no progress on" in caplog.text


async def test_a_partition_that_moves_is_left_alone(clock: list[float]) -> None:
    tp = TP(TOPIC, 0)
    consumer = Consumer(tp, committed=30, end=1_000, fetched_to=30)
    dog = watchdog(consumer)
    for step in range(30):
        consumer._committed_offset[tp] = 30 + step
        consumer.state.position = 30 + step
        clock[0] += 1
        await dog.check()
    assert consumer.seeks == [] and dog.stuck == set()


async def test_a_worker_recovering_is_reported_not_disturbed(
    clock: list[float], caplog: Any
) -> None:
    tp = TP(TOPIC, 2)
    consumer = Consumer(tp, committed=5, end=9, fetched_to=5)
    dog = watchdog(consumer, busy=True)
    await checks(dog, clock, STUCK_AFTER + 1)
    assert consumer.seeks == [] and "in_recovery=True" in caplog.text


async def test_records_waiting_in_the_client_are_back_pressure_not_starvation(
    clock: list[float], caplog: Any
) -> None:
    tp = TP(TOPIC, 5)
    consumer = Consumer(tp, committed=1_070, end=10_700, fetched_to=1_070)
    consumer.waiting[tp] = FetchResult()  # fetched; Faust takes it when its buffers have room
    dog = watchdog(consumer)
    await checks(dog, clock, STUCK_AFTER - 1)
    assert consumer.seeks == [] and "nothing fetched" not in caplog.text
    clock[0] += 1
    await dog.check()  # a commit that stops for 10 s is still a stall, reported
    assert "no progress on" in caplog.text and "its records wait in the client" in caplog.text
    # but not sought: that would drop the waiting records and send the partition to the
    # back of the client's queue, to wait again (the start-up fill stalled for minutes so)
    assert consumer.seeks == []


async def test_an_error_waiting_in_the_client_is_sought_past(clock: list[float]) -> None:
    tp = TP(TOPIC, 5)
    consumer = Consumer(tp, committed=1_070, end=10_700, fetched_to=1_070)
    consumer.waiting[tp] = FetchError()
    dog = watchdog(consumer)
    await checks(dog, clock, STUCK_AFTER)
    assert consumer.seeks == [(tp, 1_070)]


async def test_a_refetch_that_does_not_help_is_a_stall_10_s_after_the_last_commit(
    clock: list[float], caplog: Any
) -> None:
    tp = TP(TOPIC, 7)
    consumer = Consumer(tp, committed=680, end=13_600, fetched_to=680)
    dog = watchdog(consumer)
    await checks(dog, clock, STARVED_AFTER)
    assert consumer.seeks == [(tp, 680)]  # fetched again at 4 s
    await checks(dog, clock, STUCK_AFTER - STARVED_AFTER - 1)
    assert "no progress on" not in caplog.text
    clock[0] += 1
    await dog.check()
    assert "no progress on" in caplog.text  # not another 4 s refetch: counted as a stall


async def test_a_check_that_fails_is_logged_and_the_next_one_runs(
    clock: list[float], caplog: Any
) -> None:
    tp = TP(TOPIC, 6)
    consumer = Consumer(tp, committed=3, end=9, fetched_to=3)
    dog = watchdog(consumer)
    consumer.fail = True
    await dog.check()
    assert "the watchdog's check failed" in caplog.text
    consumer.fail = False
    await checks(dog, clock, STARVED_AFTER)
    assert consumer.seeks == [(tp, 3)]


async def test_a_partition_that_returns_after_a_rebalance_starts_afresh(
    clock: list[float],
) -> None:
    tp = TP(TOPIC, 4)
    consumer = Consumer(tp, committed=8, end=20, fetched_to=9)
    consumer._read_offset[tp] = 9
    dog = watchdog(consumer)
    await dog.check()
    consumer.assignment = lambda: set()  # type: ignore[method-assign]  # revoked
    clock[0] += 60
    await dog.check()
    consumer.assignment = lambda: {tp}  # type: ignore[method-assign]  # and back
    await dog.check()
    assert consumer.seeks == []  # its clock starts now, not a minute ago
