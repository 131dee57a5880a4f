"""The shared-memory decider: versioned writes with compare-and-set and access control."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic_core import to_json

from core.envelopes import envelope, rejection, remember
from schemas.base import CommandRejected, RejectionCode
from schemas.inbox import MemoryUpdatedDelivery
from schemas.memory import (
    ANYONE,
    MAX_VALUE_BYTES,
    DeleteMemory,
    MemoryAcl,
    MemoryCommand,
    MemoryDeleted,
    MemoryEntry,
    MemoryEvent,
    MemoryItem,
    MemoryUpdated,
    can_read,
    can_write,
)


def initial_state() -> MemoryEntry:
    return MemoryEntry()


def decide(command: MemoryCommand, entry: MemoryEntry, now: datetime) -> list[MemoryEvent]:
    """The events ``command`` causes (empty: a redelivered command)."""
    if command.command_id in entry.recent_command_ids:
        return []
    item = entry.item
    current = item.version if item is not None else 0
    if command.expected_version is not None and command.expected_version != current:
        now_is = f"version {current}" if item is not None else "absent"
        reason = (
            f"key {command.key!r} is {now_is}, not version {command.expected_version}: "
            "someone else wrote it first; read it again and retry"
        )
        return [_reject(command, now, "conflict", reason, entry.seq, current)]
    common = envelope(command.command_id, command.correlation_id, entry.seq, now)
    agent = command.agent_id
    if isinstance(command, DeleteMemory):
        if item is None:
            return [_reject(command, now, "not_found", _absent(command.key), entry.seq, 0)]
        if not can_write(item.acl, agent):
            reason = f"agent {agent!r} may not delete {command.key!r}: not its owner or a writer"
            return [_reject(command, now, "forbidden", reason, entry.seq, current)]
        return [MemoryDeleted(**common, key=command.key, version=current, agent_id=agent)]
    if len(to_json(command.value)) > MAX_VALUE_BYTES:
        reason = f"a memory value may be at most {MAX_VALUE_BYTES} bytes of JSON"
        return [_reject(command, now, "invalid", reason, entry.seq, current)]
    changes_acl = command.readers is not None or command.writers is not None
    if item is None:
        acl = MemoryAcl(
            owner=agent,
            readers=command.readers if command.readers is not None else (ANYONE,),
            writers=command.writers or (),
        )
        created_by, created_at = agent, now
    else:
        if not can_write(item.acl, agent):
            reason = f"agent {agent!r} may not write {command.key!r}: not its owner or a writer"
            return [_reject(command, now, "forbidden", reason, entry.seq, current)]
        if changes_acl and agent is not None and agent != item.acl.owner:
            reason = f"only the owner of {command.key!r} may change who reads and writes it"
            return [_reject(command, now, "forbidden", reason, entry.seq, current)]
        acl = item.acl.model_copy(
            update={
                "readers": command.readers if command.readers is not None else item.acl.readers,
                "writers": command.writers if command.writers is not None else item.acl.writers,
            }
        )
        created_by, created_at = item.created_by, item.created_at
    written = MemoryItem(
        key=command.key,
        value=command.value,
        version=entry.seq + 1,
        acl=acl,
        created_by=created_by,
        created_at=created_at,
        updated_by=agent,
        updated_at=now,
    )
    return [
        MemoryUpdated(
            **common, key=command.key, item=written, previous_version=current, agent_id=agent
        )
    ]


def evolve(entry: MemoryEntry, event: MemoryEvent) -> MemoryEntry:
    if isinstance(event, CommandRejected) or event.seq <= entry.seq:
        return entry
    item = event.item if isinstance(event, MemoryUpdated) else None
    return MemoryEntry(
        item=item,
        seq=event.seq,
        recent_command_ids=remember(entry.recent_command_ids, event.command_id),
    )


def fold(events: Iterable[MemoryEvent], entry: MemoryEntry | None = None) -> MemoryEntry:
    result = entry if entry is not None else initial_state()
    for event in events:
        result = evolve(result, event)
    return result


def deliveries_for(
    event: MemoryEvent, before: MemoryEntry, subscribers: Iterable[str]
) -> list[MemoryUpdatedDelivery]:
    """What subscribers of the key hear: those allowed to read it, except the writer."""
    if isinstance(event, CommandRejected):
        return []
    acl = event.item.acl if isinstance(event, MemoryUpdated) else _acl_of(before)
    item = event.item if isinstance(event, MemoryUpdated) else None
    version = event.item.version if isinstance(event, MemoryUpdated) else event.version
    return [
        MemoryUpdatedDelivery(
            delivery_id=f"{event.event_id}:{agent_id}",
            agent_id=agent_id,
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            key=event.key,
            version=version,
            deleted=item is None,
            updated_by=event.agent_id,
            item=item,
        )
        for agent_id in sorted(set(subscribers))
        if agent_id != event.agent_id and can_read(acl, agent_id)
    ]


def _acl_of(entry: MemoryEntry) -> MemoryAcl:
    return entry.item.acl if entry.item is not None else MemoryAcl()


def _absent(key: str) -> str:
    return f"memory key {key!r} does not exist"


def _reject(
    command: MemoryCommand,
    now: datetime,
    code: RejectionCode,
    reason: str,
    seq: int,
    current_version: int,
) -> CommandRejected:
    refused = rejection(
        command.command_id,
        command.correlation_id,
        command.type,
        command.key,
        now,
        code,
        reason,
        seq,
    )
    return refused.model_copy(update={"seq": seq, "current_version": current_version})
