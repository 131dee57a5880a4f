"""A gateway remembers the latest outcomes by when they were written, not by the order it
happened to read its backlog in (services/hub.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from core.envelopes import envelope
from kolony.settings import Settings
from schemas.memory import MemoryAcl, MemoryItem, MemoryUpdated
from services.hub import Hub
from tests.schemas.test_codec import NOW


def written(command_id: str, partition: int, offset: int, at_ms: int) -> Any:
    """A consumer record holding a memory write decided for ``command_id``."""
    item = MemoryItem(
        key=f"k.{command_id}",
        value=1,
        version=1,
        acl=MemoryAcl(owner="a"),
        created_by="a",
        created_at=NOW,
        updated_by="a",
        updated_at=NOW,
    )
    event = MemoryUpdated(
        **envelope(command_id, None, 0, NOW), key=item.key, item=item, previous_version=0
    )
    return SimpleNamespace(
        partition=partition,
        offset=offset,
        timestamp=at_ms,
        key=item.key.encode(),
        value=event.model_dump_json().encode(),
    )


def test_a_backlog_read_out_of_order_keeps_the_latest_decisions() -> None:
    hub = Hub(Settings(remembered_outcomes=3))
    topic = hub.topics.memory_events
    # Partition 6 is read first: it holds the latest decision, which a client is retrying
    # for across this gateway's restart. The older decisions of partition 1 follow it.
    hub._on_records(topic, [written("latest", 6, 361, at_ms=9_000)])
    hub._on_records(topic, [written(f"old-{n}", 1, n, at_ms=1_000 + n) for n in range(5)])
    # While folding, it keeps the newest written, not the last read.
    assert set(hub._outcomes) == {"latest", "old-3", "old-4"}

    hub.follower.caught_up.set()
    hub._on_records(topic, [written("live", 2, 0, at_ms=10_000)])
    assert list(hub._outcomes) == ["old-4", "latest", "live"]

    hub._on_records(topic, [written("next", 3, 0, at_ms=11_000)])  # then in the order read
    assert list(hub._outcomes) == ["latest", "live", "next"]


async def test_remembering_nothing_is_allowed_and_requests_are_still_answered() -> None:
    hub = Hub(Settings(remembered_outcomes=0))
    waiting = asyncio.get_running_loop().create_future()
    hub._pending["one"] = waiting
    hub._on_records(hub.topics.memory_events, [written("one", 0, 0, at_ms=1)])
    hub.follower.caught_up.set()
    hub._on_records(hub.topics.memory_events, [written("two", 0, 1, at_ms=2)])
    assert not hub._outcomes and waiting.done()
