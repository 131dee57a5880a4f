"""The decider's writer acks a batch only once the changelog took its states, and stops on a
changelog write the producer gave up on (the next owner folds the states from the events)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from streams.shell import BatchDecider, _Write


class Record:
    def __init__(self) -> None:
        self.acked = False

    def ack(self) -> None:
        self.acked = True


def writer() -> Any:
    """The writer's part of a decider, without a Faust app around it."""
    shell: Any = BatchDecider.__new__(BatchDecider)
    shell._store_failed = asyncio.get_running_loop().create_future()
    return shell


async def test_records_are_acked_once_the_changelog_took_their_states() -> None:
    shell = writer()
    stored: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    records = [Record(), Record()]
    shell._ack_once_stored([stored], records)
    await asyncio.sleep(0)
    assert not any(r.acked for r in records)
    stored.set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert all(r.acked for r in records)


async def test_nothing_to_store_acks_at_once() -> None:
    shell = writer()
    records = [Record()]
    shell._ack_once_stored([], records)
    assert records[0].acked


async def test_a_failed_changelog_write_acks_nothing_and_stops_the_writer() -> None:
    shell = writer()
    stored: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    records = [Record()]
    shell._ack_once_stored([stored], records)
    stored.set_exception(KafkaTimeoutError())
    writes: asyncio.Queue[_Write[Any]] = asyncio.Queue()
    with pytest.raises(KafkaTimeoutError):
        await asyncio.wait_for(shell._next_write(writes), 5)
    assert not records[0].acked


async def test_the_writer_takes_the_next_batch_while_nothing_failed() -> None:
    shell = writer()
    writes: asyncio.Queue[_Write[Any]] = asyncio.Queue()
    batch: _Write[Any] = _Write([], {})
    writes.put_nowait(batch)
    assert await asyncio.wait_for(shell._next_write(writes), 5) is batch
