"""The gateway's connection to the log: publishes commands, folds events, awaits outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ValidationError

from kolony.kafka import client_options
from kolony.settings import Settings
from schemas.base import CommandRejected
from schemas.registry import AGENT_EVENT, AgentEvent
from schemas.system import WORKER_BEACON, WorkerBeacon
from services.views import AgentDirectory, EventFeed

logger = logging.getLogger(__name__)


class HubUnavailable(RuntimeError):
    """Kafka or the stream workers cannot serve the request right now (HTTP 503)."""


class Rejected(Exception):
    """The decider refused the command; ``code`` and ``reason`` come from its rejection event."""

    def __init__(self, event: CommandRejected) -> None:
        super().__init__(event.reason)
        self.code = event.code
        self.reason = event.reason


class Hub:
    """One per gateway process. Several gateways may run: each folds the whole log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.directory = AgentDirectory()
        self.feed = EventFeed(settings.recent_events)
        self.workers: dict[str, WorkerBeacon] = {}
        self._pending: dict[str, asyncio.Future[AgentEvent]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._caught_up = asyncio.Event()
        self._targets: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._broker_ok_at = 0.0
        self.fetch_wait = settings.fetch_wait()
        self._fetch_waiter: asyncio.Task[None] | None = None

    # lifecycle

    async def start(self, catch_up_timeout: float = 60.0) -> None:
        """Connect, then fold the event log up to its current end before serving reads."""
        options = client_options(self.settings)
        self._producer = AIOKafkaProducer(
            **options, linger_ms=0, acks="all", request_timeout_ms=10_000
        )
        self._consumer = AIOKafkaConsumer(
            **options,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.fetch_wait.attach(self._consumer)  # sets its fetch wait, now and as traffic changes
        try:
            await self._producer.start()
            await self._consumer.start()
            partitions = await self._partitions([self.topics.agent_events, self.topics.system])
        except (KafkaError, OSError) as exc:
            await self.stop()
            raise HubUnavailable(
                f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc!r}"
            ) from exc
        except HubUnavailable:
            await self.stop()
            raise
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        starts = await self._consumer.beginning_offsets(partitions)
        ends = await self._consumer.end_offsets(partitions)
        self._targets = {tp: end for tp, end in ends.items() if end > starts[tp]}
        self._broker_ok_at = time.monotonic()
        if not self._targets:
            self._caught_up.set()
        self._reader = asyncio.create_task(self._read(), name="kolony-hub-reader")
        self._fetch_waiter = asyncio.create_task(self.fetch_wait.run(), name="kolony-fetch-wait")
        try:
            await asyncio.wait_for(self._caught_up.wait(), catch_up_timeout)
        except TimeoutError:
            logger.warning(
                "event log not folded within %.0f s; serving as it catches up", catch_up_timeout
            )

    async def stop(self) -> None:
        for task in (self._reader, self._fetch_waiter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for future in self._pending.values():
            future.cancel()
        clients = [c for c in (self._consumer, self._producer) if c is not None]
        results = await asyncio.gather(*(self._close(c) for c in clients), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.debug("closing a Kafka client: %r", result)

    @staticmethod
    async def _close(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
        # A client whose broker is gone may retry for a long time; it is closed anyway.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.stop(), 2)

    async def _partitions(self, topics: Iterable[str], wait: float = 15.0) -> list[TopicPartition]:
        """The partitions of ``topics``; a just-created topic may take a moment to appear."""
        producer = self._producer
        if producer is None:
            raise HubUnavailable("the gateway is not connected to Kafka")
        found: list[TopicPartition] = []
        for topic in topics:
            try:
                # The producer's lookup waits for (and refreshes) the topic's metadata.
                parts = await asyncio.wait_for(producer.partitions_for(topic), wait)
            except (KafkaError, TimeoutError):
                raise HubUnavailable(
                    f"topic {topic} does not exist; run `kolony up` or `kolony topics create`"
                ) from None
            found.extend(TopicPartition(topic, p) for p in sorted(parts))
        return found

    # commands

    async def execute(self, topic: str, key: str, command: BaseModel) -> AgentEvent:
        """Publish ``command`` and return the first event it caused; raise :class:`Rejected`."""
        command_id: str = command.command_id  # type: ignore[attr-defined]  # every command has one
        future: asyncio.Future[AgentEvent] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        try:
            await self.publish(topic, key, command)
            try:
                event = await asyncio.wait_for(future, self.settings.command_timeout)
            except TimeoutError:
                waited = self.settings.command_timeout
                raise HubUnavailable(
                    f"no stream worker decided the command within {waited:g} s; "
                    "is `kolony worker` running?"
                ) from None
        finally:
            self._pending.pop(command_id, None)
        if isinstance(event, CommandRejected):
            raise Rejected(event)
        return event

    async def publish(self, topic: str, key: str, command: BaseModel) -> None:
        """Publish ``command`` and wait until the broker has it (not for its outcome)."""
        if self._producer is None:
            raise HubUnavailable("the gateway is not connected to Kafka")
        self.fetch_wait.touch()  # an outcome will follow: read the log eagerly
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(
                    topic,
                    key=key.encode(),
                    value=command.model_dump_json(exclude_none=True).encode(),
                ),
                self.settings.command_timeout,
            )
        except (KafkaError, TimeoutError) as exc:
            raise HubUnavailable(f"Kafka did not accept the command: {exc!r}") from exc
        self._broker_ok_at = time.monotonic()

    # the log

    async def _read(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        max_records = 5_000
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1_000, max_records=max_records)
            except KafkaError:
                logger.exception("reading the event log failed; retrying")
                await asyncio.sleep(1)
                continue
            self._broker_ok_at = time.monotonic()
            for tp, records in batches.items():
                if records:
                    self._positions[tp] = records[-1].offset + 1
                if tp.topic == self.topics.system:
                    self._on_beacons(records)
                else:
                    # Beacons are not traffic: only events keep the fetch wait short.
                    self.fetch_wait.touch()
                    self._on_events(records)
            # Some brokers (the embedded one) under-report a partition's end offset, so
            # reaching it is not enough: the log is folded once a poll comes back short.
            if not self._caught_up.is_set() and sum(map(len, batches.values())) < max_records:
                self._check_caught_up()

    def _on_events(self, records: Iterable[Any]) -> None:
        for record in records:
            try:
                event = AGENT_EVENT.validate_json(record.value)
            except ValidationError:
                logger.warning(
                    "skipping an undecodable event at %s@%s", record.partition, record.offset
                )
                continue
            self.directory.apply(event)
            self.feed.append(event)
            future = self._pending.get(event.command_id or "")
            if future is not None and not future.done():
                future.set_result(event)

    def _on_beacons(self, records: Iterable[Any]) -> None:
        for record in records:
            try:
                beacon = WORKER_BEACON.validate_json(record.value)
            except ValidationError:
                continue
            self.workers[beacon.worker_id] = beacon

    def _check_caught_up(self) -> None:
        if all(self._positions.get(tp, 0) >= end for tp, end in self._targets.items()):
            self._caught_up.set()

    # health

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def live_workers(self, now: datetime | None = None) -> list[WorkerBeacon]:
        moment = now or datetime.now(UTC)
        return [
            beacon
            for beacon in self.workers.values()
            if moment - beacon.at <= timedelta(seconds=3 * beacon.interval_seconds)
        ]

    def broker_reachable(self) -> bool:
        return time.monotonic() - self._broker_ok_at < 5.0
