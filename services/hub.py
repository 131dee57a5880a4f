"""The gateway's connection to the log: publishes commands, folds events, awaits outcomes.

A little over 400 lines: publishing a command and awaiting its outcome, and folding the logs
that carry those outcomes, are two halves of one exchange.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from core import memory as memory_core
from core import messages as messages_core
from core.deliveries import deliveries_for as task_deliveries
from core.directory import AgentDirectory
from kolony.follower import LogFollower, close_quietly
from kolony.kafka import BrokerUnavailable, producer_options
from kolony.settings import Settings
from schemas.apps import APP_EVENT, AppEvent, AppRemoved
from schemas.base import CommandRejected
from schemas.events import AnyEvent
from schemas.limits import check_json, describe
from schemas.memory import MEMORY_EVENT, MemoryEvent
from schemas.messages import MESSAGE_EVENT, MessageEvent
from schemas.registry import (
    AGENT_EVENT,
    AgentDeregistered,
    AgentEvent,
    AgentExpired,
    AgentStatus,
)
from schemas.routes import route
from schemas.system import WORKER_BEACON, WorkerBeacon
from schemas.tasks import TASK_EVENT, TaskEvent
from services.boards.apps import AppBoard
from services.boards.events import EventFeed
from services.boards.memory import MemoryBoard
from services.boards.messages import MessageBoard
from services.boards.tasks import TaskBoard
from services.proxy import AppProxy
from services.pushes import Pushes

logger = logging.getLogger(__name__)

RECORD_LINGER_MS = 20


def encode_command(command: BaseModel) -> bytes:
    """``command`` as the worker will read it; :class:`CommandInvalid` if it could not."""
    try:
        value = command.model_dump_json(exclude_none=True).encode()
    except (PydanticSerializationError, RecursionError, ValueError) as exc:
        raise CommandInvalid(f"cannot be encoded: {exc}") from None
    try:
        check_json(value)
        type(command).model_validate_json(value)
    except ValidationError as exc:
        raise CommandInvalid(describe(exc)) from None
    except ValueError as exc:  # past the limits
        raise CommandInvalid(f"the command is too big: {exc}") from None
    return value


def _delivered(topic: str, delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        logger.warning("an event for %s was not delivered: %r", topic, delivery.exception())


class HubUnavailable(RuntimeError):
    """Kafka or the stream workers cannot serve the request right now (HTTP 503)."""


class CommandInvalid(ValueError):
    """A command the worker could not decode (HTTP 422): checked before it is published,
    with the worker's own model and limits, so that no client waits for an answer that
    cannot come."""


def _reused(command_id: str) -> CommandInvalid:
    return CommandInvalid(
        f"command id {command_id!r} (an Idempotency-Key) was used for another request "
        "already; choose a new one for each request"
    )


def _outcome(event: AnyEvent) -> AnyEvent:
    if isinstance(event, CommandRejected):
        raise Rejected(event)
    return event


class Rejected(Exception):
    """The decider refused the command; ``code`` and ``reason`` come from its rejection event."""

    def __init__(self, event: CommandRejected) -> None:
        super().__init__(event.reason)
        self.code = event.code
        self.reason = event.reason
        self.current_version = event.current_version


class Hub:
    """One per gateway process. Several gateways may run: each folds the whole log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.directory = AgentDirectory()
        self.board = TaskBoard()
        self.messages = MessageBoard(settings.message_history, settings.mailbox_size)
        self.memory = MemoryBoard(settings.memory_history)
        self.apps = AppBoard()
        self.proxy = AppProxy(settings, self.apps.apps)
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.feed = EventFeed(settings.recent_events)
        self.pushes = Pushes()
        self.workers: dict[str, WorkerBeacon] = {}
        self._pending: dict[str, asyncio.Future[AnyEvent]] = {}
        self._waiting: dict[str, int] = {}  # requests awaiting each pending command
        self._pending_for: dict[str, tuple[str, str]] = {}  # its topic and key
        # The first outcome of the latest commands: a retry with the same id gets it back.
        # Each with when its decision was written (ms): see _remember.
        self._outcomes: OrderedDict[str, tuple[str, str, AnyEvent, int]] = OrderedDict()
        self._outcomes_by_time = False  # whether insertion order is the order written
        self._oldest: list[tuple[int, int, str]] = []  # while folding: (written, n, command id)
        self._arrivals = itertools.count()
        self._producer: AIOKafkaProducer | None = None
        # Observations (the proxy's call records) go through a producer of their own that
        # lingers, so that they reach the broker as a few batches rather than one each.
        self._recorder: AIOKafkaProducer | None = None
        self.follower = LogFollower(
            settings,
            [
                self.topics.agent_events,
                self.topics.task_events,
                self.topics.message_events,
                self.topics.memory_events,
                self.topics.app_events,
                self.topics.system,
            ],
            self._on_records,
            name="kolony-hub-reader",
        )
        self._folds: dict[str, Callable[[bytes], AnyEvent]] = {
            self.topics.agent_events: self._fold_agent,
            self.topics.task_events: self._fold_task,
            self.topics.message_events: self._fold_message,
            self.topics.memory_events: self._fold_memory,
            self.topics.app_events: self._fold_app,
        }

    # lifecycle

    async def start(self, catch_up_timeout: float = 60.0) -> None:
        """Connect, then fold the event logs up to their current end before serving reads."""
        self._producer = AIOKafkaProducer(
            **producer_options(self.settings), linger_ms=0, request_timeout_ms=10_000
        )
        self._recorder = AIOKafkaProducer(
            **producer_options(self.settings),
            linger_ms=RECORD_LINGER_MS,
            request_timeout_ms=10_000,
        )
        try:
            await self._producer.start()
            await self._recorder.start()
            await self.follower.start(self._producer)
        except (KafkaError, OSError, BrokerUnavailable) as exc:
            await self.stop()
            raise HubUnavailable(
                f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc}"
            ) from exc
        self.proxy.start()
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.follower.caught_up.wait(), catch_up_timeout)
            logger.info(
                "read models folded from the log: %d records in %.1f s",
                self.follower.records_read,
                time.monotonic() - started,
            )
        except TimeoutError:
            logger.warning(
                "event log not folded within %.0f s; serving as it catches up", catch_up_timeout
            )

    def on_stop(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Have :meth:`stop` await ``closer`` (what serves the hub stops with it)."""
        self._closers.append(closer)

    async def stop(self) -> None:
        for closer in self._closers:
            await closer()
        self._closers.clear()
        await self.proxy.stop()
        await self.follower.stop()
        for future in self._pending.values():
            future.cancel()
        if self._producer is not None:
            await close_quietly(self._producer)
        if self._recorder is not None:
            await close_quietly(self._recorder)

    # commands

    async def execute(self, command: BaseModel) -> AnyEvent:
        """Publish ``command`` (to its log, keyed by its entity: ``schemas.routes``) and
        return the first event it caused; raise :class:`Rejected`.

        A command whose id was decided already (a client's retry) is answered with that
        first outcome and not published again; one still in flight is awaited, not sent
        twice.
        """
        command_id: str = command.command_id  # type: ignore[attr-defined]  # every command has one
        to = route(self.topics, command)
        known = self._outcomes.get(command_id)
        if known is not None:
            events, entity, event, _ = known
            if (events, entity) != (to.events, to.key):
                raise _reused(command_id)
            return _outcome(event)
        future = self._pending.get(command_id)
        first = future is None
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[command_id] = future
            self._pending_for[command_id] = (to.commands, to.key)
        elif self._pending_for.get(command_id) != (to.commands, to.key):
            raise _reused(command_id)
        self._waiting[command_id] = self._waiting.get(command_id, 0) + 1
        try:
            if first:
                await self.publish(command)
            try:
                event = await asyncio.wait_for(
                    asyncio.shield(future), self.settings.command_timeout
                )
            except TimeoutError:
                waited = self.settings.command_timeout
                workers = len(self.live_workers())
                raise HubUnavailable(
                    f"the command was published, but no stream worker decided it within "
                    f"{waited:g} s ({workers} worker(s) alive); retry with the same command "
                    "id (Idempotency-Key) to get its outcome without applying it twice"
                ) from None
        finally:
            self._waiting[command_id] -= 1
            if not self._waiting[command_id]:
                del self._waiting[command_id]
                self._pending.pop(command_id, None)
                self._pending_for.pop(command_id, None)
        return _outcome(event)

    async def record(self, topic: str, key: str, value: bytes) -> None:
        """Hand an observation (not a command) to the producer without waiting for the
        broker; a failure to deliver it is logged, not raised."""
        if self._recorder is None:
            raise HubUnavailable("the gateway is not connected to Kafka")
        try:
            delivery = await self._recorder.send(topic, key=key.encode(), value=value)
        except KafkaError as exc:
            logger.warning("could not record an event on %s: %r", topic, exc)
            return
        delivery.add_done_callback(partial(_delivered, topic))

    async def publish(self, command: BaseModel) -> None:
        """Publish ``command`` and wait until the broker has it (not for its outcome)."""
        if self._producer is None:
            raise HubUnavailable("the gateway is not connected to Kafka")
        to = route(self.topics, command)
        value = encode_command(command)
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(to.commands, key=to.key.encode(), value=value),
                self.settings.command_timeout,
            )
        except (KafkaError, TimeoutError) as exc:
            raise HubUnavailable(f"Kafka did not accept the command: {exc!r}") from exc

    # the logs

    def _on_records(self, topic: str, records: Sequence[Any]) -> None:
        if topic == self.topics.system:
            self._on_beacons(records)
            return
        fold = self._folds[topic]
        for record in records:
            try:
                event = fold(record.value)
            except ValidationError:
                logger.warning("skipping an undecodable event at %s@%s", topic, record.offset)
                continue
            except Exception:  # a bug in a fold: one event skipped, said loudly, not the rest
                logger.exception("folding the event at %s@%s failed", topic, record.offset)
                continue
            self.feed.append(event)
            command_id = getattr(event, "command_id", None)
            if command_id is None or command_id in self._outcomes:
                continue
            entity = record.key.decode(errors="replace") if record.key else ""
            self._remember(command_id, (topic, entity, event, record.timestamp))
            future = self._pending.get(command_id)
            if future is not None and not future.done():
                future.set_result(event)

    def _remember(self, command_id: str, outcome: tuple[str, str, AnyEvent, int]) -> None:
        """Keep ``outcome`` among the latest ``remembered_outcomes``, by when they were written.

        A gateway folding its backlog reads the partitions in no particular order: one
        partition's last decision may come first and twenty thousand older ones after it.
        Forgetting by the order read dropped the outcomes a client was retrying for across a
        gateway restart, so its retries were published again, ignored by the worker as
        decided already, and answered 503 for minutes. So while it folds its backlog it
        forgets the oldest written (a heap, as bounded as the outcomes); once caught up it
        reads the records as they come, and forgets in the order read.
        """
        limit = self.settings.remembered_outcomes
        if not limit:
            return
        self._outcomes[command_id] = outcome
        if not self._outcomes_by_time:
            if not self.follower.caught_up.is_set():
                heapq.heappush(self._oldest, (outcome[3], next(self._arrivals), command_id))
                if len(self._outcomes) > limit:
                    del self._outcomes[heapq.heappop(self._oldest)[2]]
                return
            self._outcomes = OrderedDict(sorted(self._outcomes.items(), key=lambda o: o[1][3]))
            self._oldest = []
            self._outcomes_by_time = True
        while len(self._outcomes) > limit:
            self._outcomes.popitem(last=False)

    def _fold_agent(self, value: bytes) -> AgentEvent:
        event = AGENT_EVENT.validate_json(value)
        agent_id = getattr(event, "agent_id", None)
        before = self.directory.get(agent_id) if agent_id else None
        self.directory.apply(event)
        if agent_id is None or not self.pushes.active:
            return event
        after = self.directory.get(agent_id)
        was_here = before is not None and before.status is not AgentStatus.OFFLINE
        is_here = after is not None and after.status is not AgentStatus.OFFLINE
        if is_here and not was_here:
            self.pushes.presence("joined", agent_id, after)
        elif was_here and not is_here and isinstance(event, AgentDeregistered | AgentExpired):
            self.pushes.presence("left", agent_id, after)
        return event

    def _fold_task(self, value: bytes) -> TaskEvent:
        event = TASK_EVENT.validate_json(value)
        change = self.board.apply(event)
        if change is not None and self.pushes.active:
            for item in task_deliveries(event, *change):
                self.pushes.deliver(item)
        return event

    def _fold_message(self, value: bytes) -> MessageEvent:
        event = MESSAGE_EVENT.validate_json(value)
        if self.messages.apply(event) and self.pushes.active:
            for item in messages_core.deliveries_for(event):
                self.pushes.deliver(item)
        return event

    def _fold_memory(self, value: bytes) -> MemoryEvent:
        event = MEMORY_EVENT.validate_json(value)
        change = self.memory.apply(event)
        if change is not None and self.pushes.active:
            key = getattr(event, "key", "")
            subscribers = [a for a in self.directory.subscribers_of(key) if self.pushes.wants(a)]
            for item in memory_core.deliveries_for(event, change[0], subscribers):
                self.pushes.deliver(item)
        return event

    def _fold_app(self, value: bytes) -> AppEvent:
        event = APP_EVENT.validate_json(value)
        self.apps.apply(event)
        if isinstance(event, AppRemoved):  # its sessions go with it, now
            self.proxy.close_app_soon(event.app_id)
        return event

    def _on_beacons(self, records: Iterable[Any]) -> None:
        for record in records:
            try:
                beacon = WORKER_BEACON.validate_json(record.value)
            except ValidationError:
                continue
            self.workers[beacon.worker_id] = beacon

    # health

    @property
    def caught_up(self) -> bool:
        return self.follower.caught_up.is_set()

    def live_workers(self, now: datetime | None = None) -> list[WorkerBeacon]:
        moment = now or datetime.now(UTC)
        return [
            beacon
            for beacon in self.workers.values()
            if moment - beacon.at <= timedelta(seconds=3 * beacon.interval_seconds)
        ]

    def broker_reachable(self) -> bool:
        return time.monotonic() - self.follower.last_fetch_at < 5.0

    def ready(self) -> bool:
        """Serving: Kafka answers, the event log is folded, and a stream worker is alive."""
        return self.broker_reachable() and self.caught_up and bool(self.live_workers())
