"""Shared memory: versioned JSON values under keys, with access control.

Commands are keyed by the memory key, so one writer decides every change to a key:
compare-and-set needs no locks. Agents subscribe to keys or prefixes through the
registry (their subscriptions are part of the agent's record).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, JsonValue, StringConstraints, TypeAdapter

from schemas.base import CommandEnvelope, CommandRejected, EntityId, EventEnvelope, Frozen
from schemas.limits import NonNullJson

ANYONE = "*"
"""In ``readers`` or ``writers``: every agent."""

MemoryKey = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
]
"""A memory key; use ``.`` or ``:`` for hierarchy (``project.results``), and prefixes to list."""

Principal = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9._:@-]*)$"),
]
Principals = tuple[Principal, ...]

SubscriptionPattern = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=257, pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9._:@-]*\*?)$"
    ),
]
"""A key (``project.results``), or a prefix ending in ``*`` (``project.*``; ``*``: every key)."""

MAX_VALUE_BYTES = 256 * 1024


def pattern_matches(pattern: str, key: str) -> bool:
    if pattern.endswith(ANYONE):
        return key.startswith(pattern[:-1])
    return key == pattern


class MemoryAcl(Frozen):
    """Who may do what with a key.

    The owner (the agent that created it) may always read, write, delete and change the
    ACL. Writers may read and write. ``*`` means every agent. Requests without an agent
    id are the operator's and may do anything (the hub authenticates nobody: ACLs keep
    cooperating agents out of each other's state, they are not a security boundary).
    """

    owner: str | None = None
    readers: Principals = (ANYONE,)
    writers: Principals = ()


class MemoryItem(Frozen):
    """A key's current value, as readers see it."""

    key: str
    value: JsonValue
    version: int = Field(description="1 on creation, +1 on every write; 0: never written")
    acl: MemoryAcl
    created_by: str | None = None
    created_at: AwareDatetime
    updated_by: str | None = None
    updated_at: AwareDatetime


# Commands: imperative, keyed by the memory key.


class SetMemory(CommandEnvelope):
    """Write ``value``; with ``expected_version`` only if the key is at that version
    (0: only if it does not exist). ``readers``/``writers`` change the ACL (owner only)."""

    type: Literal["memory.set"] = "memory.set"
    key: MemoryKey
    value: NonNullJson
    agent_id: EntityId | None = None
    expected_version: int | None = Field(default=None, ge=0)
    readers: Principals | None = Field(default=None, max_length=1_000)
    writers: Principals | None = Field(default=None, max_length=1_000)


class DeleteMemory(CommandEnvelope):
    type: Literal["memory.delete"] = "memory.delete"
    key: MemoryKey
    agent_id: EntityId | None = None
    expected_version: int | None = Field(default=None, ge=1)


MemoryCommand = Annotated[SetMemory | DeleteMemory, Field(discriminator="type")]
MEMORY_COMMAND = TypeAdapter(MemoryCommand)


# Events: past tense, keyed by the memory key.


class MemoryUpdated(EventEnvelope):
    """The key was created or written; ``item`` is its value now."""

    type: Literal["memory.updated"] = "memory.updated"
    key: str
    item: MemoryItem
    previous_version: int
    agent_id: str | None = None


class MemoryDeleted(EventEnvelope):
    type: Literal["memory.deleted"] = "memory.deleted"
    key: str
    version: int = Field(description="the version that was deleted")
    agent_id: str | None = None


MemoryEvent = Annotated[
    MemoryUpdated | MemoryDeleted | CommandRejected, Field(discriminator="type")
]
MEMORY_EVENT = TypeAdapter(MemoryEvent)


class MemoryEntry(Frozen):
    """The memory decider's state for one key: the table's value.

    ``seq`` keeps counting across deletion, so a deleted and re-created key never reuses
    a version and a replayed old event is always recognised.
    """

    item: MemoryItem | None = None
    seq: int = 0
    recent_command_ids: tuple[str, ...] = ()


MEMORY_ENTRY = TypeAdapter(MemoryEntry)


# Who may read and write a key (the deciders, the gateway and the SDK use the same rule).


def can_read(acl: MemoryAcl, agent_id: str | None) -> bool:
    """``None`` is the operator, who may do anything."""
    return (
        agent_id is None
        or agent_id == acl.owner
        or ANYONE in acl.readers
        or agent_id in acl.readers
        or can_write(acl, agent_id)
    )


def can_write(acl: MemoryAcl, agent_id: str | None) -> bool:
    return (
        agent_id is None
        or agent_id == acl.owner
        or ANYONE in acl.writers
        or agent_id in acl.writers
    )
