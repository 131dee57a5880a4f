"""Shared-memory operations: the one place REST, WebSocket, CLI and MCP all call."""

from __future__ import annotations

from dataclasses import dataclass

from core.queries import page_of
from kolony.commands import new_envelope
from schemas.memory import DeleteMemory, MemoryEvent, MemoryItem, MemoryUpdated, SetMemory, can_read
from schemas.requests import SetMemoryRequest
from services.hub import Hub
from services.usecases.registry import get_agent, require_caught_up


class UnknownKey(LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f"memory key {key!r} does not exist")
        self.key = key


class ReadRefused(PermissionError):
    """The agent is not among the key's readers (HTTP 403)."""

    def __init__(self, key: str, agent_id: str) -> None:
        super().__init__(f"agent {agent_id!r} may not read {key!r}: not among its readers")


async def set_value(
    hub: Hub, key: str, request: SetMemoryRequest, *, issued_by: str = "gateway"
) -> tuple[MemoryItem, bool]:
    """Write ``key``; ``(item, created)``. A lost compare-and-set race is
    :class:`services.hub.Rejected` (409) carrying the current version."""
    if request.agent_id is not None:
        get_agent(hub, request.agent_id)
    command = SetMemory(
        **new_envelope(issued_by),
        key=key,
        value=request.value,
        agent_id=request.agent_id,
        expected_version=request.expected_version,
        readers=request.readers,
        writers=request.writers,
    )
    event = await hub.execute(command)
    item = hub.memory.get(key)
    if item is None:  # deleted again by someone else in the meantime
        raise UnknownKey(key)
    return item, isinstance(event, MemoryUpdated) and event.previous_version == 0


def get_value(hub: Hub, key: str, *, agent_id: str | None = None) -> MemoryItem:
    require_caught_up(hub)
    item = hub.memory.get(key)
    if item is None:
        raise UnknownKey(key)
    if not can_read(item.acl, agent_id):
        raise ReadRefused(key, agent_id or "")
    return item


MEMORY_PAGE = 100  # items in a page unless the caller asks for another size
MAX_MEMORY_PAGE = 1_000


@dataclass(frozen=True)
class MemoryPage:
    items: list[MemoryItem]
    next_page_token: str | None
    total: int  # items under the prefix that the reader may read, on every page


def list_values(
    hub: Hub,
    *,
    prefix: str = "",
    agent_id: str | None = None,
    page_size: int = MEMORY_PAGE,
    page_token: str | None = None,
) -> MemoryPage:
    """A page of the items under ``prefix`` that ``agent_id`` may read, by key.
    :class:`ValueError` for a page token this hub did not make."""
    require_caught_up(hub)
    readable = [item for item in hub.memory.items(prefix) if can_read(item.acl, agent_id)]
    page, next_token = page_of(readable, min(page_size, MAX_MEMORY_PAGE), page_token)
    return MemoryPage(items=page, next_page_token=next_token, total=len(readable))


async def delete_value(
    hub: Hub,
    key: str,
    *,
    agent_id: str | None = None,
    expected_version: int | None = None,
    issued_by: str = "gateway",
) -> None:
    require_caught_up(hub)
    if hub.memory.get(key) is None:
        raise UnknownKey(key)
    command = DeleteMemory(
        **new_envelope(issued_by), key=key, agent_id=agent_id, expected_version=expected_version
    )
    await hub.execute(command)


def history(hub: Hub, key: str, *, agent_id: str | None = None) -> list[MemoryEvent]:
    """The key's recent writes and deletions, oldest first (readers of the key only)."""
    require_caught_up(hub)
    if not hub.memory.known(key):
        raise UnknownKey(key)
    item = hub.memory.get(key)
    if item is not None and not can_read(item.acl, agent_id):
        raise ReadRefused(key, agent_id or "")
    return hub.memory.events(key)
