"""The consumer's bookkeeping of decided command offsets (streams/transport.py): what a
commit may pass, with Faust's own offset logic underneath."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from intervaltree import IntervalTree

from streams.transport import TransportOptions, _Consumer

COMMANDS = TP("tasks.commands", 0)


def consumer(committed: int | None) -> Any:
    """A consumer with only the state its offset bookkeeping reads."""
    found: Any = _Consumer.__new__(_Consumer)
    found.app = SimpleNamespace(
        kolony_transport=TransportOptions(decided_topics=frozenset({COMMANDS.topic}))
    )
    found._committed_offset = defaultdict(lambda: None, {COMMANDS: committed})
    found._acked = defaultdict(list)
    found._acked_index = defaultdict(set)
    found._gap = defaultdict(IntervalTree)
    found._kolony_starts = {}
    return found


def ack(found: Any, *offsets: int) -> None:
    for offset in offsets:
        found._acked[COMMANDS].append(offset)
        found._acked_index[COMMANDS].add(offset)


async def test_nothing_passes_an_undecided_head() -> None:
    found = consumer(committed=10)  # the next offset to decide is 10
    ack(found, 11, 12)
    assert found._new_offset(COMMANDS) is None


async def test_a_head_read_back_and_decided_is_committed_past() -> None:
    """The fetch skipped offset 10 (the head); the decider read it back, decided it and
    acknowledged it: the commit moves on (it stalled while Faust dropped that ack)."""
    found = consumer(committed=10)
    ack(found, 11, 12)
    await found.acknowledge_range(COMMANDS, 10, 10)
    assert found._new_offset(COMMANDS) == 13


async def test_a_range_read_back_fills_the_hole_it_covers() -> None:
    found = consumer(committed=10)
    ack(found, 10, 16)
    assert found._new_offset(COMMANDS) == 11  # 11..15 undecided: no further
    found._committed_offset[COMMANDS] = 11  # what Faust's commit records
    await found.acknowledge_range(COMMANDS, 11, 15)
    assert found._new_offset(COMMANDS) == 17


async def test_offsets_below_the_committed_one_are_ignored() -> None:
    found = consumer(committed=10)
    await found.acknowledge_range(COMMANDS, 5, 7)
    assert not found._gap[COMMANDS]
