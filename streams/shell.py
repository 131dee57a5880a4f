"""The Faust shell every decider runs in: commands in, events out, state in a table.

One writer per key: a command is keyed by its entity id, and the worker owning that
partition of the command topic decides it against the entity's state in the table,
publishes the events to the event topic (same key, same partition count) and writes the
new state back, which Faust records in the table's changelog.

Longer than the others on purpose: the order of the shell's steps (decide, send the events,
store the states, ack; on a new assignment, read back and fold first) is the crash-safety
protocol of docs/design.md, and it is easiest to check when it reads as one piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from types import SimpleNamespace
from typing import Any, Generic, TypeVar

import faust
from aiokafka import TopicPartition
from faust import streams as faust_streams
from faust.types import TP
from mode import CrashingSupervisor
from pydantic import TypeAdapter, ValidationError

from core.envelopes import rejection
from kolony.kafka import read_range
from kolony.partitioning import partition_for
from kolony.settings import Settings
from schemas.base import CommandRejected
from schemas.limits import check_json, describe
from schemas.routes import command_key
from streams import storage
from streams.codec import raw_topic

logger = logging.getLogger(__name__)

# Faust opens one RocksDB per table partition (5 tables × 8 partitions by default), each
# with its own memtables and block cache; its defaults (64 MiB × 3 memtables, a 2 GiB cache)
# are sized for one big table. Kolony's states are small and read from memory mostly.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 1024**2,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 1024**2,
}

C = TypeVar("C")  # a command
E = TypeVar("E")  # an event
S = TypeVar("S")  # an entity's state

# How many decided batches may wait for the broker before deciding pauses.
WRITES_IN_FLIGHT = 16


@dataclass
class _Write(Generic[S]):
    """A decided batch: what it sent, the states it changed, the records to ack after."""

    sent: list[asyncio.Future[Any]]
    states: dict[str, tuple[S, Any]]
    records: Sequence[Any] = ()


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
            options=dict(ROCKSDB_OPTIONS),  # Faust's store takes from the dict it is given
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
        # Crash safety without transactions (see docs/design.md, "Deciding, crash-safe"):
        # a decided state is read from here until its events are acknowledged, and only
        # then written to the table and its changelog; the batch is acked after that.
        self._pending: dict[str, S] = {}
        self._writes: asyncio.Queue[_Write[S]] | None = None
        self._writer: asyncio.Task[None] | None = None
        # Set to the error of a changelog write the producer gave up on.
        self._store_failed: asyncio.Future[None] | None = None
        # Partitions assigned since their log was last folded; per partition, the ids of
        # commands whose decision the event log already holds (read while recovering).
        self._unrecovered: set[int] = set()
        self._in_log: dict[int, set[str]] = {}
        # A store kept on disk (RocksDB) outlives the process: states the table holds
        # may be ahead of their changelog after a kill (docs/design.md).
        self._kept_locally = storage.on_disk(settings)
        self.recovered_events = 0
        self.found_decided = 0  # re-read commands whose decision was in the log already
        self._next_offset: dict[int, int] = {}
        signals: Any = app  # mode's signal stubs do not describe async receivers
        signals.on_partitions_assigned.connect(self._on_assigned)
        # A decider that fails stops the worker (it exits non-zero, for its supervisor to
        # start it again), rather than being restarted in place by Faust: its overlay and
        # table may hold states whose events or changelog did not reach Kafka, and only a
        # new owner's recovery (_recover) folds them from the log again.
        app.agent(self.commands, name=name, supervisor_strategy=CrashingSupervisor)(
            self._decide_stream
        )

    # what subclasses provide

    def key_of(self, command: C) -> str:
        """The entity a command changes (``schemas.routes``: one rule for every side)."""
        return command_key(command)

    def initial(self) -> S:
        raise NotImplementedError

    def decide(self, command: C, state: S, now: datetime) -> list[E]:
        raise NotImplementedError

    def evolve(self, state: S, event: E) -> S:
        raise NotImplementedError

    def decided_one(
        self, key: str, command: C | None, state: S, steps: list[tuple[E, S, S]], now: datetime
    ) -> None:
        """Called after each command was decided, with the entity's state now, and each
        event with the state before and after it (the events are published already).

        ``command`` is None for events a crashed worker published and this one found in the
        log while recovering: what follows from them (deliveries) may not have been sent.
        """

    async def ready(self) -> None:
        """Awaited before each batch: a decider that needs more than its table waits here."""

    # the shell

    async def _decide_stream(self, stream: Any) -> None:
        """Decide whatever has arrived, as one batch; ack it once its results are durable.

        Iterating a Faust stream costs several event-loop turns per event, far more than
        deciding a command; so the decider drains its channel's queue directly. A batch's
        records are acked only after everything it caused is with the broker, so a commit
        (which first flushes the producer) never covers a command whose results were not
        written. If deciding fails, nothing is acked: the agent crashes loudly and the
        batch is decided again by the next worker to own its partitions.
        """
        channel = aiter(stream.channel)  # registers the subscription, as iteration would
        queue = channel.queue
        limit = self.settings.batch_max
        if self._direct:
            self._writes = asyncio.Queue(WRITES_IN_FLIGHT)
            self._store_failed = asyncio.get_running_loop().create_future()
            self._writer = asyncio.ensure_future(self._write_behind(self._writes))
        try:
            while True:
                try:
                    batch = [await queue.get()]
                except StopAsyncIteration:
                    return  # Faust ends the channel this way when the worker stops
                await self.ready()
                while len(batch) < limit and not queue.empty():
                    batch.append(queue.get_nowait())
                if not self._direct:
                    self.decide_batch(batch)
                    for event in batch:
                        event.ack()
                    continue
                batch = await self._fill_holes(batch)
                await self._recover(batch)
                states = self.decide_batch(batch)
                await self._queue_write(_Write(await self._send_outbox(), states, batch))
        finally:
            if self._writer is not None:
                self._writer.cancel()

    async def _queue_write(self, write: _Write[S]) -> None:
        """Hand a decided batch to the writer; fail if the writer failed."""
        writes, writer = self._writes, self._writer
        if writes is None or writer is None:
            raise RuntimeError("the decider's writer is not running")
        if writer.done():
            writer.result()  # raises what stopped it
        put = asyncio.ensure_future(writes.put(write))
        await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            writer.result()

    async def _write_behind(self, writes: asyncio.Queue[_Write[S]]) -> None:
        """In decision order: once a batch's events (and deliveries) are acknowledged,
        write its states to the table and the changelog, then ack its records.

        Events first: a worker killed in between leaves events whose states are not in the
        changelog, and the next owner folds them in before deciding (:meth:`_recover`);
        never states (and remembered command ids) whose events were not written.
        """
        while True:
            write = await self._next_write(writes)
            try:
                if write.sent:
                    await asyncio.gather(*write.sent)
                for key, (state, record) in write.states.items():
                    self._store(key, state, record)
                    if self._pending.get(key) is state:
                        del self._pending[key]
                self._ack_once_stored(await self._send_outbox(), write.records)
            finally:
                writes.task_done()

    async def _next_write(self, writes: asyncio.Queue[_Write[S]]) -> _Write[S]:
        """The next decided batch; raises the error of a failed changelog write first."""
        failed = self._store_failed
        if failed is not None and failed.done():
            failed.result()  # raises
        if failed is None or not writes.empty():
            return await writes.get()
        get: asyncio.Future[_Write[S]] = asyncio.ensure_future(writes.get())
        either: set[asyncio.Future[Any]] = {get, failed}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not get.done():
                get.cancel()
        if failed.done():
            failed.result()  # raises
        return get.result()

    def _ack_once_stored(self, stored: list[asyncio.Future[Any]], records: Sequence[Any]) -> None:
        """Ack ``records`` once the changelog holds their states: a commit never covers a
        command whose state the broker did not take. A changelog write that failed (the
        producer gave up) stops the decider, and with it the worker, as a failed event write
        does; the next owner folds the states from the events again."""

        def done(sent: asyncio.Future[Any]) -> None:
            # Cancelled: the producer is stopping, and so is the worker; nothing is acked.
            if sent.cancelled() or isinstance(sent.exception(), asyncio.CancelledError):
                return
            if (error := sent.exception()) is not None:
                failed = self._store_failed
                if failed is not None and not failed.done():
                    failed.set_exception(error)
                return
            for record in records:
                record.ack()

        if not stored:
            for record in records:
                record.ack()
            return
        (stored[0] if len(stored) == 1 else asyncio.gather(*stored)).add_done_callback(done)

    async def _drain_writes(self) -> None:
        """Wait until the writer has handled every queued batch; raise what stopped it."""
        writes, writer = self._writes, self._writer
        if writes is None or writer is None:
            return
        if not writer.done():
            joined = asyncio.ensure_future(writes.join())
            try:
                await asyncio.wait({joined, writer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                joined.cancel()
        if writer.done():
            writer.result()

    async def _on_assigned(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """A new assignment: its partitions are folded from the log before deciding again."""
        (assigned,) = args
        topic = self.commands.get_topic_name()
        mine = {tp.partition for tp in assigned if tp.topic == topic}
        self._unrecovered = set(mine)
        self._next_offset.clear()
        n = self.settings.partitions
        self._pending = {
            key: state
            for key, state in self._pending.items()
            if partition_for(key.encode(), n) in mine
        }

    async def _fill_holes(self, batch: list[Any]) -> list[Any]:
        """The batch, with the commands Faust's fetch skipped before them read back in.

        Faust may drop fetched messages (a rebalance clears the stream buffers while the
        fetch goes on) and then skip their offsets; the transport no longer counts such
        offsets as acknowledged (``streams.transport``), so they are read here, decided in
        order with the rest, and acknowledged once written like any other.
        """
        holes: list[tuple[int, int, int]] = []
        faust_consumer: Any = self.app.consumer  # streams.transport's
        topic = self.commands.get_topic_name()
        for record in batch:
            message = record.message
            expected = self._next_offset.get(message.partition)
            if expected is None:  # the first since the assignment: from where deciding starts
                expected = faust_consumer.decide_from(TP(topic, message.partition))
            if expected is not None and message.offset > expected:
                holes.append((message.partition, expected, message.offset - 1))
            if expected is None or message.offset >= expected:
                self._next_offset[message.partition] = message.offset + 1
        if not holes:
            return batch
        reread = await self._read_commands(holes)
        logger.warning(
            "%s: %d commands the fetch skipped were read back (offsets %s)",
            self.commands.get_topic_name(),
            len(reread),
            ", ".join(f"[{p}] {a}..{b}" for p, a, b in holes),
        )
        return sorted([*batch, *reread], key=lambda r: (r.message.partition, r.message.offset))

    async def _read_commands(self, holes: list[tuple[int, int, int]]) -> list[Any]:
        topic = self.commands.get_topic_name()
        starts: dict[TopicPartition, int] = {}
        ends: dict[TopicPartition, int] = {}
        for partition, first, last in holes:
            tp = TopicPartition(topic, partition)
            starts[tp] = min(starts.get(tp, first), first)
            ends[tp] = max(ends.get(tp, last + 1), last + 1)
        records = await read_range(self.settings, starts, ends)
        wanted = {(p, o) for p, first, last in holes for o in range(first, last + 1)}
        found = [r for r in records if (r.partition, r.offset) in wanted]
        faust_consumer: Any = self.app.consumer  # streams.transport's
        acknowledge = faust_consumer.acknowledge_range
        for partition, offset in wanted - {(r.partition, r.offset) for r in found}:
            await acknowledge(TP(topic, partition), offset, offset)  # markers: no command
        return [_Reread.of(record, acknowledge) for record in found]

    async def _recover(self, batch: Sequence[Any]) -> None:
        """Before the first command of a newly assigned partition is decided, fold into its
        states the events a worker published but did not live to store, and note which
        re-read commands the log shows decided already (they are not decided twice).

        Everything a crashed worker left uncommitted was read by it no earlier than the
        first command this worker now reads, so its events are no older than that command
        (less ``recovery_lookback``, for clocks that differ).
        """
        if not self._unrecovered:
            return
        since: dict[int, float] = {}
        record_of: dict[int, Any] = {}
        for record in batch:
            partition = record.message.partition
            if partition in self._unrecovered:
                stamp = record.message.timestamp or datetime.now(UTC).timestamp()
                since[partition] = min(since.get(partition, stamp), stamp)
                record_of.setdefault(partition, record)
        if not since:
            return
        self._unrecovered -= since.keys()
        await self._drain_writes()  # this worker's own writes are in the log first
        records = await self._read_events(since)
        for partition in since:
            self._in_log[partition] = set()
        changed: dict[str, tuple[S, Any]] = {}
        steps: dict[str, list[tuple[E, S, S]]] = defaultdict(list)
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            try:
                event = self.event_adapter.validate_json(record.value)
            except ValidationError:
                continue
            command_id = getattr(event, "command_id", None)
            if command_id is not None:
                self._in_log[record.partition].add(command_id)
            if record.key is None or isinstance(event, CommandRejected):
                continue
            key = record.key.decode()
            before = changed[key][0] if key in changed else self.current(key) or self.initial()
            after = self.evolve(before, event)
            if after is not before:
                steps[key].append((event, before, after))
                changed[key] = (after, record_of[record.partition])
            elif self._kept_locally and key not in changed and self.current(key) is not None:
                # A store kept on disk may hold a state the dead worker wrote whose
                # changelog record never reached Kafka: write it there again.
                changed[key] = (after, record_of[record.partition])
        if changed:
            now = datetime.now(UTC)
            self._pending.update((key, state) for key, (state, _) in changed.items())
            for key, (state, _) in changed.items():
                if key in steps:
                    self.decided_one(key, None, state, steps[key], now)
            await self._queue_write(_Write(await self._send_outbox(), changed))
        self.recovered_events += sum(len(s) for s in steps.values())
        logger.info(
            "%s: partitions %s read from the log before deciding: %d decisions, of which "
            "%d events were not in the table yet",
            self.commands.get_topic_name(),
            sorted(since),
            sum(len(self._in_log[p]) for p in since),
            sum(len(s) for s in steps.values()),
        )

    async def _read_events(self, since: dict[int, float]) -> list[Any]:
        """The events of ``since``'s partitions written from each one's moment on."""
        topic = self.events.get_topic_name()
        lookback = self.settings.recovery_lookback
        moments = {
            TopicPartition(topic, p): max(0, int((moment - lookback) * 1000))
            for p, moment in since.items()
        }
        return await read_range(self.settings, moments, by_time=True)

    def current(self, key: str) -> S | None:
        """The entity's state as decided so far (its events perhaps still on their way)."""
        pending = self._pending.get(key)
        return pending if pending is not None else self.table.get(key)

    def decide_batch(self, batch: Sequence[Any]) -> dict[str, tuple[S, Any]]:
        """Decide a batch of command records; synchronous, so it is atomic per batch.

        Returns the states it changed (each with the record of its last command); with
        direct sends they are pending until the writer stores them, under exactly-once
        they are in the table already.
        """
        now = datetime.now(UTC)
        dirty: dict[str, tuple[S, Any]] = {}
        n = self.settings.partitions
        for record in batch:
            message = record.message
            raw_key: bytes | None = message.key
            try:
                command = self.command_adapter.validate_json(message.value)
            except ValidationError as exc:
                self.publish(
                    raw_key, _undecodable(raw_key, message.value, exc, now), message.partition
                )
                continue
            if command.command_id in self._in_log.get(message.partition, ()):
                # Decided by a worker that died before committing: its decision is in the log.
                self.found_decided += 1
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
            before = dirty[key][0] if key in dirty else self.current(key) or self.initial()
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
        if self._direct:
            self._pending.update((key, state) for key, (state, _) in dirty.items())
        else:
            for key, (state, record) in dirty.items():
                with _event_context(record):
                    self.table[key] = state
        return dirty

    def publish(self, key: bytes | None, event: E | CommandRejected, partition: int) -> None:
        value = self.event_adapter.dump_json(event, exclude_none=True)
        self.send(self.events, key, value, partition)

    def send(self, topic: Any, key: bytes | None, value: bytes, partition: int) -> None:
        """Queue a record; it is handed to the producer before the batch is acked."""
        if self._direct:
            self._outbox.append((topic.get_topic_name(), key, value, partition))
        else:
            topic.send_soon(key=key, value=value, partition=partition)

    def _store(self, key: str, state: S, record: Any) -> None:
        """Write ``state`` to the table, and queue it for the changelog: what Faust's
        ``table[key] = state`` does, with the changelog record sent through the producer
        directly rather than Faust's one-at-a-time buffer."""
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

    async def _send_outbox(self) -> list[asyncio.Future[Any]]:
        """Hand the queued records to the producer, as one record batch per partition
        (one future per partition, not per record; nothing waits for the broker here).
        Faust flushes the producer before it commits input offsets."""
        if not self._outbox:
            return []
        outbox, self._outbox = self._outbox, []
        sent: list[asyncio.Future[Any]] = []
        groups: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = defaultdict(list)
        for topic, key, value, partition in outbox:
            groups[topic, partition].append((key, value))
        service: Any = self.app.producer  # streams.transport's producer
        producer = service.client()
        for (topic, partition), records in groups.items():
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(timestamp=None, key=key, value=value) is None:  # full
                    sent.append(await self._submit(producer, batch, topic, partition))
                    batch = producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value)
            sent.append(await self._submit(producer, batch, topic, partition))
        return sent

    async def _submit(
        self, producer: Any, batch: Any, topic: str, partition: int
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
        if topic == self._changelog:
            future.add_done_callback(partial(self._persisted, batch.record_count()))
        return future

    def send_command(self, command: Any) -> None:
        """Send a command of the worker's own (a timer's) to the partition that owns its
        entity."""
        key_bytes = self.key_of(command).encode()
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


@dataclass
class _Reread:
    """A command read back from Kafka, shaped as the Faust events the decider handles."""

    message: Any
    acknowledge: Any

    @classmethod
    def of(cls, record: Any, acknowledge: Any) -> _Reread:
        message = SimpleNamespace(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            timestamp=(record.timestamp or 0) / 1000.0,
        )
        return cls(message, acknowledge)

    def ack(self) -> None:
        tp = TP(self.message.topic, self.message.partition)
        asyncio.ensure_future(self.acknowledge(tp, self.message.offset, self.message.offset))


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


def _undecodable(
    raw_key: bytes | None, raw: bytes | None, exc: ValidationError, now: datetime
) -> CommandRejected:
    """The rejection of a record that is no command; it names the command's id where the
    record has one, so that whoever sent it hears why."""
    entity = raw_key.decode(errors="replace") if raw_key else None
    reason = f"undecodable command: {describe(exc)}"
    return rejection(_command_id_in(raw), None, None, entity, now, "invalid", reason)


def _command_id_in(raw: bytes | None) -> str | None:
    try:
        check_json(raw or b"")
        document = json.loads(raw or b"")
    except ValueError:  # not JSON, or past the limits
        return None
    command_id = document.get("command_id") if isinstance(document, dict) else None
    return command_id if isinstance(command_id, str) and 0 < len(command_id) <= 128 else None
