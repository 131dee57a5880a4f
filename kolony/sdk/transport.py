"""What an :class:`kolony.sdk.Agent` needs from a way to reach the hub.

Two transports implement it: :mod:`kolony.sdk.kafka_transport` (the default: the agent
speaks the Kafka protocol of ``docs/protocol.md`` directly) and
:mod:`kolony.sdk.gateway_transport` (the WebSocket protocol of a gateway, for agents that
cannot reach Kafka).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from schemas.a2a import AgentCard, Message, TaskState
from schemas.memory import MemoryItem
from schemas.messages import MessageRecord, MessageType
from schemas.requests import CreateTask
from schemas.tasks import TaskRecord


@dataclass(frozen=True)
class MemoryChange:
    """A memory key the agent follows was written (``item``) or deleted."""

    key: str
    version: int
    deleted: bool = False
    updated_by: str | None = None
    item: MemoryItem | None = None


@dataclass(frozen=True)
class Delivery:
    """One item for the agent, whichever way it came. ``token`` is the transport's own
    (a Kafka offset): the agent hands it back once it is done with the item."""

    delivery_id: str
    kind: Literal["task_assigned", "task_updated", "message", "memory"]
    task: TaskRecord | None = None
    role: str | None = None
    record: MessageRecord | None = None
    change: MemoryChange | None = None
    token: Any = None


class Transport(Protocol):
    async def start(self, within: float | None) -> None:
        """Connect, retrying with backoff (and saying why) for ``within`` seconds, or for
        as long as it takes with None; then :class:`BusError`."""

    async def stop(self) -> None: ...

    async def register(self, card: AgentCard, ttl_seconds: float) -> float:
        """Register (or renew); returns the registration's TTL in seconds."""
        ...

    async def deregister(self, reason: str | None) -> None: ...

    async def heartbeat(self) -> None: ...

    async def send(
        self,
        to: tuple[str, ...],
        task_id: str | None,
        message_type: MessageType,
        message: Message,
    ) -> MessageRecord: ...

    async def broadcast(
        self, capability: str | None, message_type: MessageType, message: Message
    ) -> MessageRecord: ...

    async def ack(self, message_ids: list[str]) -> None: ...

    async def submit(self, task: CreateTask) -> None: ...

    async def report(
        self,
        task_id: str,
        state: TaskState,
        message: Message | None,
        result: Any,
        reason: str | None,
    ) -> None: ...

    async def memory_set(
        self,
        key: str,
        value: Any,
        expected_version: int | None,
        readers: Iterable[str] | None,
        writers: Iterable[str] | None,
    ) -> MemoryItem: ...

    async def memory_delete(self, key: str, expected_version: int | None) -> None: ...

    async def memory_get(self, key: str) -> MemoryItem | None: ...

    async def subscribe(self, patterns: tuple[str, ...]) -> tuple[str, ...]: ...

    async def unsubscribe(self, patterns: tuple[str, ...]) -> tuple[str, ...]: ...

    def deliveries(self) -> AsyncIterator[Delivery]: ...

    async def finished(self, delivery: Delivery) -> None:
        """The agent is done with ``delivery``: it need not come again."""
        ...

    def abandoned(self, delivery: Delivery) -> None:
        """The agent could not finish ``delivery``: let it come again (after a restart)."""
        ...
