"""The default transport: the agent speaks Kolony's Kafka protocol itself.

Commands go to the command topics keyed by their entity; their outcomes (or rejections) are
read from the event topics (:class:`kolony.sdk.link.KafkaLink`). Deliveries come from the
agent's inbox partition; its offset is committed up to the first item not finished yet, so
a restarted agent gets again exactly what it had not finished.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from kolony.commands import new_envelope
from kolony.sdk.errors import BusError
from kolony.sdk.link import KafkaLink
from kolony.sdk.transport import Delivery, MemoryChange
from kolony.settings import Settings
from schemas.a2a import AgentCard, Message, Role, TaskState, as_message
from schemas.inbox import (
    MemoryUpdatedDelivery,
    MessageDelivery,
    TaskAssignedDelivery,
    TaskUpdatedDelivery,
)
from schemas.memory import DeleteMemory, MemoryItem, SetMemory, can_read
from schemas.messages import AckMessages, BroadcastMessage, MessageRecord, MessageType, SendMessage
from schemas.registry import (
    DeregisterAgent,
    RecordHeartbeat,
    RegisterAgent,
    SubscribeMemory,
    UnsubscribeMemory,
)
from schemas.requests import CreateTask
from schemas.tasks import UpdateTaskStatus


class KafkaTransport:
    def __init__(self, settings: Settings, agent_id: str, request_timeout: float = 30.0) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.agent_id = agent_id
        self.request_timeout = request_timeout
        self.link = KafkaLink(settings, agent_id)
        self._pending: dict[int, bool] = {}  # inbox offset -> finished

    async def start(self, within: float | None) -> None:
        await self.link.start(within)

    async def stop(self) -> None:
        await self._commit_finished()
        await self.link.stop()

    # commands

    def _envelope(self) -> dict[str, Any]:
        return new_envelope(f"sdk:{self.agent_id}")

    async def _request(self, command: BaseModel, within: float | None = None) -> dict[str, Any]:
        return await self.link.request(command, within or self.request_timeout)

    async def _message(self, command: BaseModel) -> MessageRecord:
        return MessageRecord.model_validate((await self._request(command))["record"])

    async def register(self, card: AgentCard, ttl_seconds: float) -> float:
        event = await self._request(
            RegisterAgent(
                **self._envelope(), agent_id=self.agent_id, card=card, ttl_seconds=ttl_seconds
            )
        )
        return float(event.get("ttl_seconds", ttl_seconds))

    async def deregister(self, reason: str | None) -> None:
        command = DeregisterAgent(**self._envelope(), agent_id=self.agent_id, reason=reason)
        await self._request(command, within=10)

    async def heartbeat(self) -> None:
        command = RecordHeartbeat(**self._envelope(), agent_id=self.agent_id)
        await self.link.publish(command)

    async def send(
        self,
        to: tuple[str, ...],
        task_id: str | None,
        message_type: MessageType,
        message: Message,
    ) -> MessageRecord:
        return await self._message(
            SendMessage(
                **self._envelope(),
                sender_id=self.agent_id,
                to=to,
                task_id=task_id,
                message_type=message_type,
                message=message,
            )
        )

    async def broadcast(
        self, capability: str | None, message_type: MessageType, message: Message
    ) -> MessageRecord:
        return await self._message(
            BroadcastMessage(
                **self._envelope(),
                sender_id=self.agent_id,
                capability=capability,
                message_type=message_type,
                message=message,
            )
        )

    async def ack(self, message_ids: list[str]) -> None:
        for start in range(0, len(message_ids), 100):
            command = AckMessages(
                **self._envelope(),
                agent_id=self.agent_id,
                message_ids=tuple(message_ids[start : start + 100]),
            )
            await self.link.publish(command)

    async def submit(self, task: CreateTask) -> None:
        first = as_message(task.initial_message, Role.USER)
        await self._request(task.command(self._envelope(), task.id or str(uuid.uuid4()), first))

    async def report(
        self,
        task_id: str,
        state: TaskState,
        message: Message | None,
        result: Any,
        reason: str | None,
    ) -> None:
        await self._request(
            UpdateTaskStatus(
                **self._envelope(),
                task_id=task_id,
                state=state,
                agent_id=self.agent_id,
                message=message,
                result=result,
                reason=reason,
            ),
        )

    async def memory_set(
        self,
        key: str,
        value: Any,
        expected_version: int | None,
        readers: Iterable[str] | None,
        writers: Iterable[str] | None,
    ) -> MemoryItem:
        command = SetMemory(
            **self._envelope(),
            key=key,
            value=value,
            agent_id=self.agent_id,
            expected_version=expected_version,
            readers=tuple(readers) if readers is not None else None,
            writers=tuple(writers) if writers is not None else None,
        )
        event = await self._request(command)
        return MemoryItem.model_validate(event["item"])

    async def memory_delete(self, key: str, expected_version: int | None) -> None:
        command = DeleteMemory(
            **self._envelope(), key=key, agent_id=self.agent_id, expected_version=expected_version
        )
        await self._request(command)

    async def memory_get(self, key: str) -> MemoryItem | None:
        """Folds the key's partition of the memory log from its start (fine for occasional
        reads; ``on_memory`` follows a key without polling it)."""
        tp = await self.link.partition_of(self.topics.memory_events, key)
        item: MemoryItem | None = None
        for event in await self.link.read_partition(tp):
            if event.get("key") != key:
                continue
            if event.get("type") == "memory.updated":
                with contextlib.suppress(ValidationError):
                    item = MemoryItem.model_validate(event["item"])
            elif event.get("type") == "memory.deleted":
                item = None
        if item is not None and not can_read(item.acl, self.agent_id):
            raise BusError(f"agent {self.agent_id} may not read {key!r}")
        return item

    async def subscribe(self, patterns: tuple[str, ...]) -> tuple[str, ...]:
        command = SubscribeMemory(**self._envelope(), agent_id=self.agent_id, patterns=patterns)
        return tuple((await self._request(command)).get("subscriptions", ()))

    async def unsubscribe(self, patterns: tuple[str, ...]) -> tuple[str, ...]:
        command = UnsubscribeMemory(**self._envelope(), agent_id=self.agent_id, patterns=patterns)
        return tuple((await self._request(command)).get("subscriptions", ()))

    # deliveries

    async def deliveries(self) -> AsyncIterator[Delivery]:
        async for offset, item in self.link.inbox():
            self._pending[offset] = False
            match item:
                case TaskAssignedDelivery():
                    yield Delivery(item.delivery_id, "task_assigned", task=item.task, token=offset)
                case TaskUpdatedDelivery():
                    yield Delivery(
                        item.delivery_id,
                        "task_updated",
                        task=item.task,
                        role=item.role,
                        token=offset,
                    )
                case MessageDelivery():
                    yield Delivery(item.delivery_id, "message", record=item.record, token=offset)
                case MemoryUpdatedDelivery():
                    change = MemoryChange(
                        item.key, item.version, item.deleted, item.updated_by, item.item
                    )
                    yield Delivery(item.delivery_id, "memory", change=change, token=offset)

    async def finished(self, delivery: Delivery) -> None:
        if delivery.token in self._pending:
            self._pending[delivery.token] = True
        await self._commit_finished()

    def abandoned(self, delivery: Delivery) -> None:
        """Stays uncommitted: the next run of the agent reads it again."""

    async def _commit_finished(self) -> None:
        """Commit up to the first item not finished yet (tasks finish out of order)."""
        finished = None
        for offset in sorted(self._pending):
            if not self._pending[offset]:
                break
            finished = offset
            del self._pending[offset]
        if finished is not None:
            await self.link.commit_inbox(finished + 1)
