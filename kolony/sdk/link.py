"""An agent's Kafka link: commands out; its inbox and its commands' outcomes in.

Everything here is the public protocol of ``docs/protocol.md``, spoken with aiokafka:

- **commands** go to ``<prefix>.<entity>.commands`` keyed by the entity's id. A send that
  fails (broker gone, leader moving) is retried with exponential backoff and jitter until
  ``publish_timeout``; a retried command may arrive twice, which the hub's deciders ignore
  (they remember command ids).
- **outcomes**: a command's event, or its ``command.rejected``, lands on the event topic's
  partition that holds the entity's key, carrying the command's ``command_id``. To await one,
  the link follows that partition from its end (resolved before the command is sent).
- **the inbox**: the agent's partition of ``<prefix>.agents.inbox``, read in a consumer group
  of the agent's own, so a restarted agent resumes after the last item it finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import BaseModel

from kolony.kafka import consumer_options, producer_options, read_backlog
from kolony.partitioning import partition_for
from kolony.sdk.backoff import backoff
from kolony.sdk.errors import BusError, Rejected
from kolony.settings import Settings
from schemas.base import CommandRejected
from schemas.inbox import INBOX_ITEM, InboxItem
from schemas.routes import route

logger = logging.getLogger(__name__)

T = TypeVar("T")


class KafkaLink:
    def __init__(
        self,
        settings: Settings,
        agent_id: str,
        *,
        publish_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.agent_id = agent_id
        self.topics = settings.topics
        self.publish_timeout = publish_timeout
        self._producer: AIOKafkaProducer | None = None
        self._inbox: AIOKafkaConsumer | None = None
        self._outcomes: AIOKafkaConsumer | None = None
        self._inbox_tp: TopicPartition | None = None
        self._followed: set[TopicPartition] = set()
        self._follow_lock = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Commands whose outcome did not come in time, and the outcomes that came later: a
        # retry with the same command id is answered by them.
        self._unanswered: set[str] = set()
        self._late: dict[str, dict[str, Any]] = {}
        self._partitions: dict[str, int] = {}
        self._reader: asyncio.Task[None] | None = None

    # lifecycle

    async def start(self, within: float | None = 60.0) -> None:
        """Connect (retrying with backoff for ``within`` seconds, or until it works with
        None) and open the agent's inbox."""
        self._producer = AIOKafkaProducer(**producer_options(self.settings), linger_ms=1)
        options = consumer_options(self.settings)
        self._inbox = AIOKafkaConsumer(
            **options,
            group_id=f"{self.topics.prefix}.agent.{self.agent_id}",
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        self._outcomes = AIOKafkaConsumer(**options, enable_auto_commit=False)
        deadline = math.inf if within is None else time.monotonic() + within
        where = self.settings.bootstrap_servers
        try:
            with _quiet_connection_errors():  # reported per attempt, with the reason, below
                for client in (self._producer, self._inbox, self._outcomes):
                    await _retrying(
                        client.start,
                        deadline,
                        f"connect to Kafka at {where}",
                        hint="is the hub running? KOLONY_BOOTSTRAP_SERVERS names another Kafka",
                    )
        except BaseException:
            await self.stop()
            raise
        await self._open_inbox(deadline)
        self._reader = asyncio.create_task(self._read_outcomes(), name="kolony-sdk-outcomes")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for future in self._waiting.values():
            future.cancel()
        for client in (self._outcomes, self._inbox, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 10)

    async def _partition_count(self, topic: str, deadline: float) -> int:
        if topic not in self._partitions:
            producer = self._require(self._producer)
            while True:
                partitions = await _retrying(
                    lambda: producer.partitions_for(topic), deadline, f"find {topic}"
                )
                if partitions:
                    break
                if time.monotonic() > deadline:
                    raise BusError(f"topic {topic} does not exist: is the hub running?")
                await asyncio.sleep(0.5)
            self._partitions[topic] = len(partitions)
        return self._partitions[topic]

    async def partition_of(self, topic: str, key: str) -> TopicPartition:
        deadline = time.monotonic() + self.publish_timeout
        count = await self._partition_count(topic, deadline)
        return TopicPartition(topic, partition_for(key.encode(), count))

    # commands and outcomes

    async def publish(self, command: BaseModel) -> None:
        """Send a command to its log, keyed by its entity (``schemas.routes``); retried
        with backoff until ``publish_timeout`` (then BusError)."""
        producer = self._require(self._producer)
        to = route(self.topics, command)
        value = command.model_dump_json(exclude_none=True).encode()
        tp = await self.partition_of(to.commands, to.key)
        deadline = time.monotonic() + self.publish_timeout
        await _retrying(
            lambda: producer.send_and_wait(
                to.commands, value, key=to.key.encode(), partition=tp.partition
            ),
            deadline,
            f"publish {getattr(command, 'type', 'a command')}",
        )

    async def request(self, command: BaseModel, within: float) -> dict[str, Any]:
        """Publish ``command`` and return its outcome event (a dict); a rejection raises
        :class:`Rejected`; no outcome ``within`` seconds raises :class:`BusError`."""
        command_id = str(getattr(command, "command_id"))  # noqa: B009 - every command has one
        to = route(self.topics, command)
        await self._follow(await self.partition_of(to.events, to.key))
        event = self._late.pop(command_id, None)
        if event is None:
            event = await self._publish_and_wait(command, command_id, within)
        self._unanswered.discard(command_id)
        if event.get("type") == "command.rejected":
            raise Rejected.of(CommandRejected.model_validate(event))
        return event

    async def _publish_and_wait(
        self, command: BaseModel, command_id: str, within: float
    ) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        try:
            await self.publish(command)
            try:
                return await asyncio.wait_for(future, within)
            except TimeoutError:
                self._unanswered.add(command_id)
                kind = getattr(command, "type", "command")
                raise BusError(f"no answer to {kind} within {within:g} s") from None
        finally:
            self._waiting.pop(command_id, None)

    async def _follow(self, tp: TopicPartition) -> None:
        """Add ``tp`` to the outcomes consumer, positioned at its end; keep the others where
        they are (assigning anew resets positions)."""
        if tp in self._followed:
            return
        consumer = self._require(self._outcomes)
        async with self._follow_lock:
            if tp in self._followed:
                return
            kept = {old: await consumer.position(old) for old in self._followed}
            consumer.assign([*kept, tp])
            for old, position in kept.items():
                consumer.seek(old, position)
            await consumer.seek_to_end(tp)
            await consumer.position(tp)
            self._followed.add(tp)

    async def _read_outcomes(self) -> None:
        consumer = self._require(self._outcomes)
        attempt = 0
        while True:
            if not self._followed:
                await asyncio.sleep(0.05)
                continue
            try:
                async with self._follow_lock:
                    fetched = await consumer.getmany(timeout_ms=100)
            except KafkaError as exc:
                attempt += 1
                logger.warning("reading outcomes failed (%s); retrying", exc)
                await asyncio.sleep(backoff(attempt))
                continue
            attempt = 0
            for records in fetched.values():
                for record in records:
                    self._resolve(record.value)

    def _resolve(self, value: bytes | None) -> None:
        if not (self._waiting or self._unanswered) or not value:
            return
        try:
            event = json.loads(value)
        except ValueError:
            return
        command_id = str(event.get("command_id"))
        future = self._waiting.get(command_id)
        if future is not None and not future.done():
            future.set_result(event)
        elif command_id in self._unanswered:
            self._unanswered.discard(command_id)
            self._late[command_id] = event

    # the inbox

    async def _open_inbox(self, deadline: float) -> None:
        """The agent's inbox partition: from its committed offset, or from its end (nothing
        before the agent's first registration is for it)."""
        consumer = self._require(self._inbox)
        tp = await self.partition_of(self.topics.agent_inbox, self.agent_id)
        consumer.assign([tp])
        committed = await _retrying(lambda: consumer.committed(tp), deadline, "read the inbox")
        self._inbox_tp = tp
        if committed is not None:
            consumer.seek(tp, committed)
            await consumer.position(tp)
            return
        await consumer.seek_to_end(tp)
        start = await consumer.position(tp)  # resolved before the agent registers
        # Committed now, so that a run that dies before finishing anything resumes here.
        await self.commit_inbox(start)

    async def inbox(self) -> AsyncIterator[tuple[int, InboxItem]]:
        """The agent's inbox items with their offsets, forever; others' items (sharing the
        partition) and undecodable ones are skipped."""
        consumer = self._require(self._inbox)
        key = self.agent_id.encode()
        attempt = 0
        while True:
            try:
                fetched = await consumer.getmany(timeout_ms=500, max_records=500)
            except KafkaError as exc:
                attempt += 1
                logger.warning("reading the inbox failed (%s); retrying", exc)
                await asyncio.sleep(backoff(attempt))
                continue
            attempt = 0
            for records in fetched.values():
                for record in records:
                    if record.key != key:
                        continue
                    try:
                        item = INBOX_ITEM.validate_json(record.value)
                    except ValueError:
                        logger.warning("skipping an undecodable inbox item at %s", record.offset)
                        continue
                    yield record.offset, item

    async def commit_inbox(self, offset: int) -> None:
        """Everything before ``offset`` is done: a restarted agent starts there."""
        consumer = self._require(self._inbox)
        tp = self._require(self._inbox_tp)
        try:
            await consumer.commit({tp: offset})
        except KafkaError as exc:  # the next commit covers it; a redelivery is recognised
            logger.warning("could not commit the inbox at %s: %s", offset, exc)

    async def read_partition(self, tp: TopicPartition) -> list[dict[str, Any]]:
        """Every event in ``tp`` from its start to its end now (for one-off lookups)."""
        consumer = AIOKafkaConsumer(
            **consumer_options(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            start = (await consumer.beginning_offsets([tp]))[tp]
            ends = await consumer.end_offsets([tp])
            # An explicit offset: a lazy seek to the beginning can lose a race with the
            # reset that assigning starts.
            consumer.seek(tp, start)
            try:
                records = await asyncio.wait_for(read_backlog(consumer, ends), self.publish_timeout)
            except TimeoutError:
                raise BusError(f"could not read {tp.topic}[{tp.partition}] to its end") from None
            events: list[dict[str, Any]] = []
            for record in records:
                with contextlib.suppress(ValueError):
                    events.append(json.loads(record.value))
            return events
        finally:
            await consumer.stop()

    @staticmethod
    def _require(client: T | None) -> T:
        if client is None:
            raise BusError("the agent is not started")
        return client


async def _retrying(call: Any, deadline: float, what: str, hint: str = "") -> Any:
    """``await call()`` until it works; Kafka errors are retried with backoff until
    ``deadline``, then raised as :class:`BusError`. With a ``hint``, each failed attempt
    is a warning that says why (a user is waiting); without, it is logged at info."""
    attempt = 0
    while True:
        try:
            return await call()
        except KafkaError as exc:
            attempt += 1
            pause = backoff(attempt)
            why = "nothing answers there" if isinstance(exc, KafkaConnectionError) else repr(exc)
            if time.monotonic() + pause > deadline:
                raise BusError(f"cannot {what}: {why}" + (f" ({hint})" if hint else "")) from exc
            level = logging.WARNING if hint else logging.INFO
            logger.log(level, "cannot %s (%s); retrying in %.1f s; %s", what, why, pause, hint)
            await asyncio.sleep(pause)


class _DropConnectionErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unable connect to")


@contextlib.contextmanager
def _quiet_connection_errors() -> Iterator[None]:
    """aiokafka logs an error for every failed connection attempt, without saying what to
    do; while the SDK retries (and says why itself), those lines are left out."""
    quiet = _DropConnectionErrors()
    client = logging.getLogger("aiokafka")
    client.addFilter(quiet)
    try:
        yield
    finally:
        client.removeFilter(quiet)
