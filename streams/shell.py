"""The Faust shell every decider runs in: commands in, events out, state in a table.

One writer per key: a command is keyed by its entity id, and the worker owning that
partition of the command topic decides it against the entity's state in the table,
publishes the events to the event topic (same key, same partition count) and writes the
new state back, which Faust records in the table's changelog.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

import faust
from faust import streams as faust_streams
from pydantic import TypeAdapter, ValidationError

from core.envelopes import rejection
from kolony.settings import Settings
from schemas.base import CommandRejected
from streams.codec import raw_topic
from streams.partitioning import partition_for

logger = logging.getLogger(__name__)

C = TypeVar("C")  # a command
E = TypeVar("E")  # an event
S = TypeVar("S")  # an entity's state


class BatchDecider(Generic[C, E, S]):
    """Faust shell around a pure decider; subclasses say how to decide and what follows."""

    command_adapter: TypeAdapter[Any]
    event_adapter: TypeAdapter[Any]
    state_adapter: TypeAdapter[Any]
    state_codec: str  # the same serialisation, registered with Faust

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        *,
        commands: str,
        events: str,
        table: str,
        name: str,
    ) -> None:
        self.app = app
        self.settings = settings
        n = settings.partitions
        self.commands = raw_topic(app, commands, n)
        self.events = raw_topic(app, events, n)
        # Keys must serialise to the same bytes as command keys, so that Kafka's
        # partitioner puts an entity's commands, events and state in one partition.
        changelog = app.topic(
            settings.topics.changelog(table),
            partitions=n,
            key_type=str,
            value_type=None,
            key_serializer="raw",
            value_serializer=self.state_codec,
            compacting=True,
            deleting=False,
            acks=False,
            internal=True,
        )
        self.table = app.Table(
            table,
            partitions=n,
            key_type=str,
            value_type=None,
            use_partitioner=True,
            changelog_topic=changelog,
        )
        # Faust derives a table's serializers from its types (JSON keys); Kolony's keys
        # are raw UTF-8 like the command keys, and values go through the pydantic codec.
        table_internals: Any = self.table
        table_internals.key_serializer = "raw"
        table_internals.value_serializer = self.state_codec
        self.decided = 0
        self._changelog = changelog.get_topic_name()
        # Records of the batch being decided, sent straight through the producer. Under
        # exactly-once they go through Faust, whose transactions must include them.
        self._direct = settings.exactly_once is not True
        self._outbox: list[tuple[str, bytes | None, bytes, int]] = []
        app.agent(self.commands, name=name)(self._decide_stream)

    # what subclasses provide

    def key_of(self, command: C) -> str:
        raise NotImplementedError

    def initial(self) -> S:
        raise NotImplementedError

    def decide(self, command: C, state: S, now: datetime) -> list[E]:
        raise NotImplementedError

    def evolve(self, state: S, event: E) -> S:
        raise NotImplementedError

    def decided_one(
        self, key: str, command: C, state: S, steps: list[tuple[E, S, S]], now: datetime
    ) -> None:
        """Called after each command was decided, with the entity's state now, and each
        event with the state before and after it (the events are published already)."""

    async def ready(self) -> None:
        """Awaited before each batch: a decider that needs more than its table waits here."""

    # the shell

    async def _decide_stream(self, stream: Any) -> None:
        """Decide whatever has arrived, as one batch, then ack it.

        Iterating a Faust stream costs several event-loop turns per event, far more than
        deciding a command; so the decider drains its channel's queue directly. Events
        are acked only after their batch was decided, so a commit (which first flushes the
        producer) never covers a command whose results were not sent. If deciding fails,
        nothing is acked: the agent crashes loudly and the batch is decided again later.
        """
        channel = aiter(stream.channel)  # registers the subscription, as iteration would
        queue = channel.queue
        limit = self.settings.batch_max
        while True:
            try:
                batch = [await queue.get()]
            except StopAsyncIteration:
                return  # Faust ends the channel this way when the worker stops
            await self.ready()
            while len(batch) < limit and not queue.empty():
                batch.append(queue.get_nowait())
            self.decide_batch(batch)
            await self._send_outbox()
            for event in batch:
                event.ack()

    def decide_batch(self, batch: Sequence[Any]) -> None:
        """Decide a batch of command records; synchronous, so it is atomic per batch."""
        now = datetime.now(UTC)
        dirty: dict[str, tuple[S, Any]] = {}
        n = self.settings.partitions
        for record in batch:
            message = record.message
            raw_key: bytes | None = message.key
            try:
                command = self.command_adapter.validate_json(message.value)
            except ValidationError as exc:
                self.publish(raw_key, _undecodable(raw_key, exc, now), message.partition)
                continue
            key = self.key_of(command)
            key_bytes = key.encode()
            if raw_key is not None and raw_key != key_bytes:
                reason = f"record key {raw_key!r} must equal the command's entity id {key!r}"
                refused = _misrouted(command, key, now, reason)
                self.publish(key_bytes, refused, partition_for(key_bytes, n))
                continue
            owner = partition_for(key_bytes, n)
            if message.partition != owner:
                # Produced with another partitioner (librdkafka's default, say): hand it
                # to the partition that owns the entity, which decides it.
                self.commands.send_soon(key=key_bytes, value=message.value, partition=owner)
                continue
            before = dirty[key][0] if key in dirty else self.table.get(key) or self.initial()
            steps = []
            state = before
            for event in self.decide(command, before, now):
                after = self.evolve(state, event)
                steps.append((event, state, after))
                self.publish(key_bytes, event, owner)
                state = after
            if state is not before:
                dirty[key] = (state, record)
            self.decided_one(key, command, state, steps, now)
            self.decided += 1
        for key, (state, record) in dirty.items():
            self._write(key, state, record)

    def publish(self, key: bytes | None, event: E | CommandRejected, partition: int) -> None:
        value = self.event_adapter.dump_json(event, exclude_none=True)
        self.send(self.events, key, value, partition)

    def send(self, topic: Any, key: bytes | None, value: bytes, partition: int) -> None:
        """Queue a record; it is handed to the producer before the batch is acked."""
        if self._direct:
            self._outbox.append((topic.get_topic_name(), key, value, partition))
        else:
            topic.send_soon(key=key, value=value, partition=partition)

    def _write(self, key: str, state: S, record: Any) -> None:
        """Write ``state`` to the table, and to its changelog."""
        if not self._direct:
            with _event_context(record):
                self.table[key] = state
            return
        # What Faust's ``table[key] = state`` does, with the changelog record sent through
        # the producer directly rather than Faust's one-at-a-time buffer.
        with _event_context(record):
            self.table.data[key] = state
        partition = record.message.partition
        value = self.state_adapter.dump_json(state, exclude_none=True)
        self._outbox.append((self._changelog, key.encode(), value, partition))

    def _persisted(self, count: int, future: Any) -> None:
        """As Faust does: a store remembers how far its changelog is written."""
        if not future.cancelled() and future.exception() is None:
            metadata = future.result()
            store: Any = self.table.data
            store.set_persisted_offset(metadata.topic_partition, metadata.offset + count - 1)

    async def _send_outbox(self) -> None:
        """Hand the batch's records to the producer, as one record batch per partition
        (one future per partition, not per record; nothing waits for the broker here).
        Faust flushes the producer before it commits input offsets."""
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, []
        groups: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = defaultdict(list)
        for topic, key, value, partition in outbox:
            groups[topic, partition].append((key, value))
        service: Any = self.app.producer  # streams.transport's producer
        producer = service.client()
        for (topic, partition), records in groups.items():
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(timestamp=None, key=key, value=value) is None:  # full
                    await self._submit(producer, batch, topic, partition)
                    batch = producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value)
            await self._submit(producer, batch, topic, partition)

    async def _submit(self, producer: Any, batch: Any, topic: str, partition: int) -> None:
        future = await producer.send_batch(batch, topic, partition=partition)
        if topic == self._changelog:
            future.add_done_callback(partial(self._persisted, batch.record_count()))

    def send_command(self, key: str, command: Any) -> None:
        """Send a command of the worker's own (a timer's) to the partition that owns ``key``."""
        key_bytes = key.encode()
        self.commands.send_soon(
            key=key_bytes,
            value=command.model_dump_json(exclude_none=True).encode(),
            partition=partition_for(key_bytes, self.settings.partitions),
        )

    def owned_partitions(self) -> set[int]:
        topic = self.commands.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def owns(self, key: str, owned: set[int]) -> bool:
        return partition_for(key.encode(), self.settings.partitions) in owned


@contextlib.contextmanager
def _event_context(record: Any) -> Iterator[None]:
    """Make ``record`` Faust's current event while writing its key to the table.

    Faust's RocksDB store picks the partition database from the current event, which
    batch deciding does not set; this is the context variable Faust's own streams set.
    """
    token = faust_streams._current_event.set(weakref.ref(record))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def rejected(events: Sequence[Any]) -> bool:
    return any(isinstance(e, CommandRejected) for e in events)


def _misrouted(command: Any, key: str, now: datetime, reason: str) -> CommandRejected:
    return rejection(
        command.command_id, command.correlation_id, command.type, key, now, "invalid", reason
    )


def _undecodable(raw_key: bytes | None, exc: ValidationError, now: datetime) -> CommandRejected:
    entity = raw_key.decode(errors="replace") if raw_key else None
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors()[:5]
    )
    return rejection(None, None, None, entity, now, "invalid", f"undecodable command: {problems}")
