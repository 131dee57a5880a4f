"""``SyncAgent``: the blocking face of :class:`kolony.sdk.Agent`, for scripts and sync code.

The agent runs on an event loop of its own in a background thread; every method here waits
for the result there. Handlers may be plain functions: they run in a worker thread, so a
slow one does not hold up the agent (a plain task handler returns its result or raises).

    with SyncAgent(AgentCard(name="clerk", version="1")) as clerk:
        handle = clerk.delegate({"text": "..."}, capability="summarize")
        print(handle.result(within=60).result)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from kolony.sdk.agent import Agent
from kolony.sdk.errors import BusError
from kolony.sdk.handlers import IncomingMessage, TaskHandle
from schemas.a2a import AgentCard, Message
from schemas.memory import MemoryItem
from schemas.messages import MessageRecord, MessageType
from schemas.registry import RegisteredAgent
from schemas.tasks import TaskRecord

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])


class SyncTaskHandle:
    def __init__(self, handle: TaskHandle, owner: SyncAgent) -> None:
        self.task_id = handle.task_id
        self._handle = handle
        self._owner = owner

    def result(self, within: float | None = None) -> TaskRecord:
        """Block until the task is finished (or ``within`` seconds pass: BusError)."""
        return self._owner._call(self._handle.result(within), None)


class SyncAgent:
    def __init__(self, card: AgentCard | dict[str, Any] | None = None, **options: Any) -> None:
        self.agent = Agent(card, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def agent_id(self) -> str:
        return self.agent.agent_id

    # handlers (async or plain functions)

    def on_task(self, capability: str | None = None) -> Callable[[H], H]:
        return self.agent.on_task(capability)

    def on_message(self, handler: H) -> H:
        return self.agent.on_message(handler)

    def on_memory(self, pattern: str) -> Callable[[H], H]:
        return self.agent.on_memory(pattern)

    # lifecycle

    def start(self) -> RegisteredAgent:
        if self._loop is not None:
            raise BusError("the agent is started already")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"kolony-agent-{self.agent_id}", daemon=True
        )
        self._thread.start()
        try:
            return self._call(self.agent.start(), None)
        except BaseException:
            self._shut_loop()
            raise

    def stop(self, reason: str | None = "the agent stopped", deregister: bool = True) -> None:
        if self._loop is None:
            return
        try:
            self._call(self.agent.stop(reason, deregister), None)
        finally:
            self._shut_loop()

    def _shut_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        if loop is not None and not loop.is_running():
            loop.close()

    def __enter__(self) -> SyncAgent:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, work: Coroutine[Any, Any, T], timeout: float | None = 120.0) -> T:
        loop = self._loop
        if loop is None:
            work.close()
            raise BusError("the agent is not started: use it in a with block, or start() it")
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, loop)
        return future.result(timeout)

    # what the agent does

    def send(
        self,
        to: str | Iterable[str] | None,
        content: str | Message,
        *,
        task_id: str | None = None,
        message_type: MessageType | str = MessageType.TEXT,
    ) -> MessageRecord:
        return self._call(self.agent.send(to, content, task_id=task_id, message_type=message_type))

    def broadcast(
        self,
        content: str | Message,
        *,
        capability: str | None = None,
        message_type: MessageType | str = MessageType.TEXT,
    ) -> MessageRecord:
        return self._call(
            self.agent.broadcast(content, capability=capability, message_type=message_type)
        )

    def receive(self, within: float = 0.0) -> list[IncomingMessage]:
        return self._call(self.agent.receive(within), None)

    def delegate(self, input: Any = None, **options: Any) -> SyncTaskHandle:  # noqa: A002
        return SyncTaskHandle(self._call(self.agent.delegate(input, **options)), self)

    def report(self, task_id: str, state: str, **details: Any) -> None:
        self._call(self.agent.report(task_id, state, **details))

    def memory_get(self, key: str) -> MemoryItem | None:
        return self._call(self.agent.memory_get(key))

    def memory_set(self, key: str, value: Any, **options: Any) -> MemoryItem:
        return self._call(self.agent.memory_set(key, value, **options))

    def memory_delete(self, key: str, *, expected_version: int | None = None) -> None:
        self._call(self.agent.memory_delete(key, expected_version=expected_version))

    def subscribe(self, *patterns: str) -> tuple[str, ...]:
        return self._call(self.agent.subscribe(*patterns))

    def unsubscribe(self, *patterns: str) -> tuple[str, ...]:
        return self._call(self.agent.unsubscribe(*patterns))
