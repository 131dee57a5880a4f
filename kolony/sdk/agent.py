"""``Agent``: an agent on the Kolony network in a few lines, over Kafka.

Decorator style, for scripts::

    agent = Agent(AgentCard(name="summarizer", version="1.0.0", skills=[...]))

    @agent.on_task("summarize")
    async def summarize(task: TaskContext) -> dict:
        await task.progress("reading")
        return {"summary": task.input["text"][:100]}

    agent.run_sync()

Class style, for bigger agents: subclass :class:`Agent`, set ``card``, and mark methods with
the module's :func:`on_task`, :func:`on_message` and :func:`on_memory`.

A task handler's return value completes the task (as its ``result``); an exception fails it
with the error as the reason, and the agent carries on. Messages are acked once their
handler returns (or when :meth:`Agent.receive` hands them out, without a handler).

Longer than the others on purpose: ``Agent`` is the SDK's one public class, and its life
(start, deliveries, reports, delegations, stop) reads best in one place; what handlers
receive and the class-style markers are in :mod:`kolony.sdk.handlers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar

from kolony.addresses import bootstrap_servers
from kolony.commands import chosen_command_id
from kolony.sdk.backoff import backoff
from kolony.sdk.errors import BusError, Rejected
from kolony.sdk.handlers import (
    SUBSCRIPTION_PATTERN,
    H,
    IncomingMessage,
    MemoryHandler,
    MessageHandler,
    TaskContext,
    TaskHandle,
    TaskHandler,
)
from kolony.sdk.kafka_transport import KafkaTransport
from kolony.sdk.transport import Delivery, MemoryChange, Transport
from kolony.settings import Settings
from schemas.a2a import AgentCard, Message, TaskState, as_message
from schemas.ids import agent_id_for
from schemas.memory import MemoryItem, pattern_matches
from schemas.messages import MessageRecord, MessageType
from schemas.registry import (
    RegisteredAgent,
)
from schemas.requests import CreateTask
from schemas.tasks import TaskRecord, is_terminal

logger = logging.getLogger(__name__)


class Agent:
    """One agent: registers its card, heartbeats, handles its deliveries, deregisters on exit.

    Over Kafka by default (``settings``: ``KOLONY_*``, or the embedded broker of
    ``make up``); give ``url`` (a gateway's, e.g. ``http://localhost:8000``) to go through the
    gateway's WebSocket instead, for agents that cannot reach Kafka.
    """

    card: ClassVar[AgentCard | None] = None

    def __init__(
        self,
        card: AgentCard | dict[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        url: str | None = None,
        ttl_seconds: float = 30.0,
        concurrency: int = 8,
        request_timeout: float = 30.0,
        connect_timeout: float | None = None,
    ) -> None:
        chosen = card if card is not None else type(self).card
        if chosen is None:
            raise BusError("an agent needs a card: Agent(card) or a class attribute")
        self.agent_card = (
            chosen if isinstance(chosen, AgentCard) else AgentCard.model_validate(chosen)
        )
        self.agent_id = agent_id_for(self.agent_card.name, self.agent_card.version)
        self.ttl_seconds = ttl_seconds
        self.request_timeout = request_timeout
        # None: keep trying to connect (saying why, with backoff) until the hub is there.
        self.connect_timeout = (
            connect_timeout
            if connect_timeout is not None
            else (settings or Settings()).connect_timeout
        )
        self.registered: RegisteredAgent | None = None
        self.transport: Transport
        if url is not None:
            from kolony.sdk.gateway_transport import GatewayTransport

            self.settings = settings
            self.transport = GatewayTransport(url, self.agent_id, request_timeout)
        else:
            self.settings = default_settings(settings)
            self.transport = KafkaTransport(self.settings, self.agent_id, request_timeout)
        self._task_handlers: dict[str | None, TaskHandler] = {}
        self._message_handler: MessageHandler | None = None
        self._memory_handlers: dict[str, MemoryHandler] = {}
        self._unread: asyncio.Queue[IncomingMessage] = asyncio.Queue()
        self._delegated: dict[str, asyncio.Future[TaskRecord]] = {}
        self._seen: set[str] = set()  # delivery ids handled by this process
        self._working_on: set[str] = set()  # ids of the tasks whose handlers run now
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._collect_marked_methods()

    # Decorator style

    def on_task(self, capability: str | None = None) -> Callable[[H], H]:
        """Handle tasks for ``capability`` (or every task without a more specific handler)."""

        def register(handler: H) -> H:
            self._task_handlers[capability] = handler
            return handler

        return register

    def on_message(self, handler: H) -> H:
        """Handle each message delivered to the agent."""
        self._message_handler = handler
        return handler

    def on_memory(self, pattern: str) -> Callable[[H], H]:
        """Handle changes to memory keys matching ``pattern`` (subscribed at start)."""
        SUBSCRIPTION_PATTERN.validate_python(pattern)

        def register(handler: H) -> H:
            self._memory_handlers[pattern] = handler
            return handler

        return register

    def _collect_marked_methods(self) -> None:
        for name in dir(type(self)):
            member = getattr(type(self), name, None)
            if member is None or not callable(member):
                continue
            bound = getattr(self, name)
            if hasattr(member, "__kolony_task__"):
                self._task_handlers[member.__kolony_task__] = bound
            if getattr(member, "__kolony_message__", False):
                self._message_handler = bound
            if hasattr(member, "__kolony_memory__"):
                self._memory_handlers[member.__kolony_memory__] = bound

    # Lifecycle

    async def start(self) -> RegisteredAgent:
        """Connect, register (waiting for the hub's answer), subscribe to the memory
        patterns of ``on_memory`` handlers, and start heartbeating and handling deliveries."""
        await self.transport.start(self.connect_timeout)
        try:
            ttl = await self.transport.register(self.agent_card, self.ttl_seconds)
            now = datetime.now(UTC)
            self.registered = RegisteredAgent(
                agent_id=self.agent_id,
                card=self.agent_card,
                registered_at=now,
                last_seen_at=now,
                ttl_seconds=ttl,
            )
            if self._memory_handlers:
                await self.subscribe(*self._memory_handlers)
        except BaseException:
            await self.transport.stop()
            raise
        self._background = [
            asyncio.create_task(self._heartbeat(), name=f"kolony-heartbeat-{self.agent_id}"),
            asyncio.create_task(self._consume(), name=f"kolony-deliveries-{self.agent_id}"),
        ]
        return self.registered

    async def stop(self, reason: str | None = "the agent stopped", deregister: bool = True) -> None:
        """Finish running handlers (briefly), deregister, disconnect.

        With ``deregister=False`` the agent stays registered (until its TTL runs out) and
        keeps its tasks: a process restarting under a supervisor picks them up again.
        """
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        if self._running:
            await asyncio.wait(self._running, timeout=10)
            for task in list(self._running):  # unfinished: delivered again to the next run
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
        if self.registered is not None and deregister:
            with contextlib.suppress(BusError):
                await self.transport.deregister(reason)
        await self.transport.stop()

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self, until: asyncio.Event | None = None) -> None:
        """Start, work until ``until`` is set (or SIGINT / SIGTERM), then stop."""
        stop = until or asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        try:
            async with self:
                await stop.wait()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def run_sync(self) -> None:
        """:meth:`run` for scripts without an event loop of their own."""
        asyncio.run(self.run())

    # Messages

    async def send(
        self,
        to: str | Iterable[str] | None,
        content: str | Message,
        *,
        task_id: str | None = None,
        message_type: MessageType | str = MessageType.TEXT,
    ) -> MessageRecord:
        """Send a direct message (to agent ids) and/or one in a task's thread; returns the
        record once the hub delivered it (:class:`Rejected` for unknown recipients)."""
        recipients = (to,) if isinstance(to, str) else tuple(to or ())
        return await self.transport.send(
            recipients, task_id, MessageType(message_type), _message(content)
        )

    async def broadcast(
        self,
        content: str | Message,
        *,
        capability: str | None = None,
        message_type: MessageType | str = MessageType.TEXT,
    ) -> MessageRecord:
        """To every agent that is not offline (or those with ``capability``)."""
        return await self.transport.broadcast(
            capability, MessageType(message_type), _message(content)
        )

    async def receive(self, within: float = 0.0) -> list[IncomingMessage]:
        """The messages that arrived since the last call (waiting up to ``within`` seconds
        for the first); they are acked. Only for agents without an ``on_message`` handler."""
        if self._message_handler is not None:
            raise BusError("this agent handles messages with on_message; receive() is empty")
        got: list[IncomingMessage] = []
        if self._unread.empty() and within > 0:
            with contextlib.suppress(TimeoutError):
                got.append(await asyncio.wait_for(self._unread.get(), within))
        while not self._unread.empty():
            got.append(self._unread.get_nowait())
        if got:
            await self.transport.ack([m.message_id for m in got])
        return got

    # Tasks

    async def delegate(
        self,
        input: Any = None,  # noqa: A002 - the task's input, as the protocol names it
        *,
        capability: str | None = None,
        to: str | None = None,
        title: str | None = None,
        ttl_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Ask for work, by capability or from one agent; ``await handle.result()`` for it.
        Arguments past the protocol's limits raise ``ValueError`` (pydantic's
        ``ValidationError``) before anything is sent; a submission the hub refuses raises
        :class:`Rejected`."""
        if (capability is None) == (to is None):
            raise ValueError("delegate to a capability or to an agent (one of them)")
        task_id = str(uuid.uuid4())
        future: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()
        self._delegated[task_id] = future
        try:
            await self.transport.submit(
                CreateTask(
                    id=task_id,
                    input=input,
                    capability=capability,
                    assignee_id=to,
                    title=title,
                    ttl=ttl_seconds,
                    metadata=metadata,
                    requester_id=self.agent_id,
                )
            )
        except BaseException:
            self._delegated.pop(task_id, None)
            raise
        return TaskHandle(task_id, future)

    async def report(
        self,
        task_id: str,
        state: TaskState | str,
        *,
        message: str | None = None,
        result: Any = None,
        reason: str | None = None,
    ) -> None:
        """Report on a task this agent holds (working, input_required, completed, failed).

        Returns once the hub decided the report; raises :class:`Rejected` if it refused it.
        While the hub cannot confirm it (no worker, no connection) the report is sent again,
        under the same command id so it is never applied twice, until it is decided: a
        task this agent holds is never dropped silently.
        """
        text = _message(message) if message else None
        command_id = str(uuid.uuid4())
        attempt = 0
        while True:
            try:
                with chosen_command_id(command_id):
                    await self.transport.report(task_id, TaskState(state), text, result, reason)
            except Rejected:
                raise  # decided: refused (a finished task, say), which no retry changes
            except BusError as exc:
                attempt += 1
                delay = backoff(attempt)
                logger.warning(
                    "task %s: the %s report is not confirmed yet (%s); sending it again in %.1f s",
                    task_id,
                    TaskState(state).value,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                return

    # Shared memory

    async def memory_set(
        self,
        key: str,
        value: Any,
        *,
        expected_version: int | None = None,
        readers: Iterable[str] | None = None,
        writers: Iterable[str] | None = None,
    ) -> MemoryItem:
        """Write ``key``; with ``expected_version``, only if it is at that version (0: only
        if absent). A lost race raises :class:`Rejected` with ``current_version``."""
        return await self.transport.memory_set(key, value, expected_version, readers, writers)

    async def memory_delete(self, key: str, *, expected_version: int | None = None) -> None:
        await self.transport.memory_delete(key, expected_version)

    async def memory_get(self, key: str) -> MemoryItem | None:
        """The key's value now (None if absent or deleted)."""
        return await self.transport.memory_get(key)

    async def subscribe(self, *patterns: str) -> tuple[str, ...]:
        """Hear about changes to these keys or prefixes (ending in ``*``)."""
        return await self.transport.subscribe(patterns)

    async def unsubscribe(self, *patterns: str) -> tuple[str, ...]:
        return await self.transport.unsubscribe(patterns)

    # Inside

    async def _heartbeat(self) -> None:
        """Every third of the TTL; a failed heartbeat is logged, the next one tried."""
        interval = max(0.5, (self.registered.ttl_seconds if self.registered else 30.0) / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.transport.heartbeat()
            except BusError as exc:
                logger.warning("heartbeat failed: %s", exc)

    async def _consume(self) -> None:
        attempt = 0
        while True:
            try:
                async for delivery in self.transport.deliveries():
                    attempt = 0
                    await self._dispatch(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the deliveries die: log, back off, read on
                attempt += 1
                logger.exception("reading deliveries failed; resuming")
                await asyncio.sleep(backoff(attempt))

    async def _dispatch(self, delivery: Delivery) -> None:
        if delivery.delivery_id in self._seen:
            await self.transport.finished(delivery)  # delivered twice: handled already
            return
        self._seen.add(delivery.delivery_id)
        if delivery.kind == "task_assigned" and delivery.task is not None:
            if delivery.task.id in self._working_on:
                # Handed over again (say, after the agent re-registered) while it runs here.
                await self.transport.finished(delivery)
                return
            self._working_on.add(delivery.task.id)
            await self._slots.acquire()
            task = asyncio.create_task(self._run_task(delivery, delivery.task))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return
        try:
            if delivery.kind == "message" and delivery.record is not None:
                await self._on_message(delivery.record)
            elif delivery.kind == "task_updated" and delivery.task is not None:
                self._on_task_update(delivery.role, delivery.task)
            elif delivery.kind == "memory" and delivery.change is not None:
                await self._on_memory(delivery.change)
        except Exception as exc:  # the handler's own failure: the agent carries on
            logger.warning("the %s handler failed: %r", delivery.kind, exc)
            logger.debug("the handler's traceback", exc_info=True)
        await self.transport.finished(delivery)

    async def _on_message(self, record: MessageRecord) -> None:
        message = IncomingMessage(record)
        if self._message_handler is None:
            await self._unread.put(message)
            return
        await _invoke(self._message_handler, message)
        await self.transport.ack([record.message_id])

    def _on_task_update(self, role: str | None, task: TaskRecord) -> None:
        if role != "requester" or not is_terminal(task.status.state):
            return
        future = self._delegated.pop(task.id, None)
        if future is not None and not future.done():
            future.set_result(task)

    async def _on_memory(self, change: MemoryChange) -> None:
        for pattern, handler in self._memory_handlers.items():
            if pattern_matches(pattern, change.key):
                await _invoke(handler, change)

    async def _run_task(self, delivery: Delivery, task: TaskRecord) -> None:
        try:
            finished = await self._perform(task)
        finally:
            self._slots.release()
            self._working_on.discard(task.id)
        if finished:
            await self.transport.finished(delivery)
        else:
            self.transport.abandoned(delivery)  # a restarted agent gets the task again

    async def _perform(self, task: TaskRecord) -> bool:
        """Work on ``task``; False when it could not be reported (the hub is away)."""
        handler = self._handler_for(task)
        context = TaskContext(self, task)
        try:
            if handler is None:
                wanted = task.capability or "a task without a capability"
                await context.fail(f"agent {self.agent_id} has no handler for {wanted}")
                return True
            try:
                await self.report(task.id, TaskState.WORKING)
            except Rejected as exc:
                # Finished, cancelled or taken away already: a redelivered task is not redone.
                logger.info("task %s is not ours to work on: %s", task.id, exc.reason)
                return True
            try:
                result = await _invoke(handler, context)
            except Exception as exc:
                logger.warning("task %s failed in its handler: %r", task.id, exc)
                await context.fail(f"{type(exc).__name__}: {exc}"[:1000])
                return True
            if context.reported is None:
                await context.complete(result)
        except Rejected as exc:  # cancelled or taken away while the handler ran
            logger.info("task %s: %s", task.id, exc.reason)
        except BusError as exc:
            logger.warning("task %s: could not report (%s); left for redelivery", task.id, exc)
            return False
        return True

    def _handler_for(self, task: TaskRecord) -> TaskHandler | None:
        """The capability's handler, else the catch-all one; a task sent to this agent
        without a capability goes to its only handler, if it has one."""
        handlers = self._task_handlers
        found = handlers.get(task.capability) or handlers.get(None)
        if found is None and task.capability is None and len(handlers) == 1:
            found = next(iter(handlers.values()))
        return found


def default_settings(settings: Settings | None = None) -> Settings:
    """The given settings, or the environment's (``KOLONY_*``); without bootstrap servers,
    the Kafka of the ``kolony up`` on this machine."""
    chosen = settings or Settings()
    if chosen.bootstrap_servers:
        return chosen
    return chosen.model_copy(update={"bootstrap_servers": bootstrap_servers(chosen)})


async def _invoke(handler: Callable[[Any], Any], argument: Any) -> Any:
    """Await an async handler; run a plain function in a worker thread (it may block)."""
    if inspect.iscoroutinefunction(handler):
        return await handler(argument)
    result = await asyncio.to_thread(handler, argument)
    return await result if inspect.isawaitable(result) else result


def _message(content: str | Message | None) -> Message:
    message = as_message(content if content is not None else "")
    assert message is not None  # noqa: S101 - given text, there is a message
    return message


def _matches(pattern: str, key: str) -> bool:
    return key.startswith(pattern[:-1]) if pattern.endswith("*") else key == pattern
