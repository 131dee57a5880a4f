"""What an agent's handlers receive (``TaskContext``, ``IncomingMessage``), what delegating
gives back (``TaskHandle``), and the class-style markers (``on_task``, ``on_message``,
``on_memory``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import TypeAdapter

from kolony.sdk.errors import BusError
from kolony.sdk.transport import MemoryChange
from schemas.a2a import TaskState
from schemas.memory import SubscriptionPattern
from schemas.messages import Delivery as MessageDelivery
from schemas.messages import MessageRecord, MessageType
from schemas.tasks import TaskRecord


class Reporter(Protocol):
    """What a task's handler reports through: its :class:`~kolony.sdk.agent.Agent`."""

    async def report(
        self,
        task_id: str,
        state: TaskState | str,
        *,
        message: str | None = None,
        result: Any = None,
        reason: str | None = None,
    ) -> None: ...


H = TypeVar("H", bound=Callable[..., Any])
SUBSCRIPTION_PATTERN: TypeAdapter[str] = TypeAdapter(SubscriptionPattern)


# What handlers receive


@dataclass
class TaskContext:
    """A task delivered to this agent, and the ways to report on it."""

    agent: Reporter
    task: TaskRecord
    reported: TaskState | None = None

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def input(self) -> Any:
        return self.task.input

    @property
    def capability(self) -> str | None:
        return self.task.capability

    async def progress(self, text: str) -> None:
        """Still working; ``text`` joins the task's history."""
        await self.agent.report(self.id, TaskState.WORKING, message=text)

    async def input_required(self, question: str) -> None:
        """Ask the requester for more (the task waits in ``input_required``)."""
        await self.agent.report(self.id, TaskState.INPUT_REQUIRED, message=question)
        self.reported = TaskState.INPUT_REQUIRED

    async def complete(self, result: Any = None, message: str | None = None) -> None:
        await self.agent.report(self.id, TaskState.COMPLETED, result=result, message=message)
        self.reported = TaskState.COMPLETED

    async def fail(self, reason: str) -> None:
        await self.agent.report(self.id, TaskState.FAILED, reason=reason)
        self.reported = TaskState.FAILED


@dataclass(frozen=True)
class IncomingMessage:
    """A message delivered to this agent."""

    record: MessageRecord

    @property
    def message_id(self) -> str:
        return self.record.message_id

    @property
    def sender_id(self) -> str:
        return self.record.sender_id

    @property
    def task_id(self) -> str | None:
        return self.record.task_id

    @property
    def message_type(self) -> MessageType:
        return self.record.message_type

    @property
    def broadcast(self) -> bool:
        """Sent to everyone (or to a capability), not to this agent by name."""
        return self.record.delivery is MessageDelivery.BROADCAST

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.record.message.parts if p.text is not None)


@dataclass
class TaskHandle:
    """A delegated task: ``await handle.result()`` waits until it is finished."""

    task_id: str
    _done: asyncio.Future[TaskRecord] = field(repr=False)

    async def result(self, within: float | None = None) -> TaskRecord:
        """The task once finished (completed, failed, cancelled, rejected or expired)."""
        if within is None:
            return await asyncio.shield(self._done)
        try:
            return await asyncio.wait_for(asyncio.shield(self._done), within)
        except TimeoutError:
            raise BusError(f"task {self.task_id} not finished within {within:g} s") from None


# Class-style markers


def on_task(capability: str | None = None) -> Callable[[H], H]:
    """Mark a method of an :class:`Agent` subclass as the handler of tasks for
    ``capability`` (or of every task without a more specific handler)."""

    def mark(method: H) -> H:
        method.__kolony_task__ = capability  # type: ignore[attr-defined]
        return method

    return mark


def on_message(method: H) -> H:
    """Mark a method of an :class:`Agent` subclass as its message handler."""
    method.__kolony_message__ = True  # type: ignore[attr-defined]
    return method


def on_memory(pattern: str) -> Callable[[H], H]:
    """Mark a method as the handler of changes to memory keys matching ``pattern`` (a key,
    or a prefix ending in ``*``); the agent subscribes to it when it starts."""

    SUBSCRIPTION_PATTERN.validate_python(
        pattern
    )  # a bad pattern fails here, not when the agent starts

    def mark(method: H) -> H:
        method.__kolony_memory__ = pattern  # type: ignore[attr-defined]
        return method

    return mark


TaskHandler = Callable[[TaskContext], Awaitable[Any] | Any]
MessageHandler = Callable[[IncomingMessage], Awaitable[Any] | Any]
MemoryHandler = Callable[[MemoryChange], Awaitable[Any] | Any]
