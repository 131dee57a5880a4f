"""The shared-memory decider: compare-and-set, access control, notifications, replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core import memory
from schemas.base import CommandRejected
from schemas.memory import (
    DeleteMemory,
    MemoryDeleted,
    MemoryEntry,
    MemoryUpdated,
    SetMemory,
    can_read,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def set_(value: Any = 1, **fields: Any) -> SetMemory:
    return SetMemory(command_id=str(uuid.uuid4()), issued_at=NOW, key="k", value=value, **fields)


def delete(**fields: Any) -> DeleteMemory:
    return DeleteMemory(command_id=str(uuid.uuid4()), issued_at=NOW, key="k", **fields)


def run(entry: MemoryEntry, command: Any) -> tuple[MemoryEntry, list[Any]]:
    events = memory.decide(command, entry, NOW)
    return memory.fold(events, entry), events


def test_create_then_compare_and_set() -> None:
    entry, [created] = run(MemoryEntry(), set_({"a": 1}, agent_id="owner", expected_version=0))
    assert isinstance(created, MemoryUpdated)
    assert created.item.version == 1 and created.item.acl.owner == "owner"
    _, [lost] = run(entry, set_(2, agent_id="owner", expected_version=0))
    assert isinstance(lost, CommandRejected) and lost.code == "conflict"
    assert lost.current_version == 1
    entry, [won] = run(entry, set_(2, agent_id="owner", expected_version=1))
    assert isinstance(won, MemoryUpdated) and won.item.version == 2 and won.previous_version == 1
    assert won.item.created_at == created.item.created_at


def test_only_writers_write_and_only_the_owner_changes_the_acl() -> None:
    entry, _ = run(MemoryEntry(), set_(1, agent_id="o", writers=("w",), readers=("r",)))
    _, [refused] = run(entry, set_(2, agent_id="r"))
    assert isinstance(refused, CommandRejected) and refused.code == "forbidden"
    entry, [ok] = run(entry, set_(2, agent_id="w"))
    assert isinstance(ok, MemoryUpdated) and ok.item.updated_by == "w"
    _, [acl] = run(entry, set_(3, agent_id="w", readers=("*",)))
    assert isinstance(acl, CommandRejected) and "owner" in acl.reason
    _, [by_operator] = run(entry, set_(3, readers=("*",)))
    assert isinstance(by_operator, MemoryUpdated) and by_operator.item.acl.readers == ("*",)
    assert can_read(entry.item.acl, "w") and not can_read(entry.item.acl, "x")


def test_delete_and_recreate_never_reuse_a_version() -> None:
    entry, _ = run(MemoryEntry(), set_(1))
    _, [missing] = run(MemoryEntry(), delete())
    assert isinstance(missing, CommandRejected) and missing.code == "not_found"
    entry, [gone] = run(entry, delete(expected_version=1))
    assert isinstance(gone, MemoryDeleted) and entry.item is None
    entry, [again] = run(entry, set_(2, expected_version=0))
    assert isinstance(again, MemoryUpdated) and again.item.version == 3


def test_subscribers_who_may_read_hear_of_it_except_the_writer() -> None:
    entry, [event] = run(MemoryEntry(), set_(1, agent_id="o", readers=("r",)))
    items = memory.deliveries_for(event, MemoryEntry(), {"o", "r", "x"})
    assert [i.agent_id for i in items] == ["r"]
    assert items[0].delivery_id == f"{event.event_id}:r" and items[0].item == event.item
    _, [deleted] = run(entry, delete(agent_id="o"))
    [notice] = memory.deliveries_for(deleted, entry, {"r"})
    assert notice.deleted and notice.item is None and notice.version == 1


def test_oversized_values_are_refused() -> None:
    _, [refused] = run(MemoryEntry(), set_("x" * 300_000))
    assert isinstance(refused, CommandRejected) and refused.code == "invalid"


commands = st.one_of(
    st.builds(
        lambda v, e, a: set_(v, expected_version=e, agent_id=a),
        st.integers(0, 5),
        st.none() | st.integers(0, 6),
        st.sampled_from([None, "o", "w"]),
    ),
    st.builds(
        lambda e, a: delete(expected_version=e, agent_id=a),
        st.none() | st.integers(1, 6),
        st.sampled_from([None, "o", "w"]),
    ),
)


@given(st.lists(commands, max_size=30))
def test_properties_over_any_sequence_of_writes(sequence: list[Any]) -> None:
    entry = MemoryEntry()
    log: list[Any] = []
    versions: list[int] = []
    for command in sequence:
        events = memory.decide(command, entry, NOW)
        after = memory.fold(events, entry)
        if any(isinstance(e, CommandRejected) for e in events):
            assert after == entry, "a refusal changes nothing"
            assert all(e.reason for e in events)
        current = entry.item.version if entry.item is not None else 0
        if command.expected_version is not None and command.expected_version != current:
            assert after == entry, "a lost compare-and-set changes nothing"
        assert memory.decide(command, after, NOW) == [] or after == entry, "redelivery is a no-op"
        log.extend(events)
        versions.extend(e.item.version for e in events if isinstance(e, MemoryUpdated))
        entry = after
    assert versions == sorted(set(versions)), "versions only grow"
    assert memory.fold(log) == entry, "replaying the log rebuilds the state"
    assert memory.fold(log + log) == entry, "replaying it twice changes nothing"
