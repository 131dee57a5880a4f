"""The agent registry processor: decides agent commands, keeps liveness, expires the silent."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust import streams as faust_streams
from pydantic import ValidationError

from core.registry import decide, evolve, expiry_command_id, initial_state, reject, rejection
from kolony.fetchwait import AdaptiveFetchWait
from kolony.settings import Settings
from schemas.base import CommandRejected
from schemas.registry import (
    AGENT_COMMAND,
    AGENT_EVENT,
    AgentEvent,
    AgentState,
    AgentStatus,
    ExpireAgent,
    RecordHeartbeat,
    RegisterAgent,
)
from schemas.topics import AGENTS_TABLE
from streams.codec import AGENT_STATE_CODEC, raw_topic
from streams.partitioning import partition_for

logger = logging.getLogger(__name__)


class RegistryProcessor:
    """Faust shell around :mod:`core.registry`: one writer per agent id.

    Heartbeats mostly change nothing durable: the decider persists one per agent per
    ``ttl / 3`` and the exact time of the last one lives in ``_deadlines``. After a
    restart every live agent gets a fresh TTL from the moment its partition recovered,
    as Kafka's own group coordinator does for its members after a failover.
    """

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.policy = settings.registry_policy
        topics = settings.topics
        n = settings.partitions
        self.commands = raw_topic(app, topics.agent_commands, n)
        self.events = raw_topic(app, topics.agent_events, n)
        # Keys must serialise to the same bytes as command keys, so that Kafka's
        # partitioner puts an agent's command, events and state in one partition.
        changelog = app.topic(
            topics.changelog(AGENTS_TABLE),
            partitions=n,
            key_type=str,
            value_type=None,
            key_serializer="raw",
            value_serializer=AGENT_STATE_CODEC,
            compacting=True,
            deleting=False,
            acks=False,
            internal=True,
        )
        self.table = app.Table(
            AGENTS_TABLE,
            partitions=n,
            key_type=str,
            value_type=None,
            use_partitioner=True,
            changelog_topic=changelog,
        )
        _serialize_like_commands(self.table)
        self.table.on_recover(self._on_recovered)
        # agent id -> when it goes silent; only agents that are not offline.
        self._deadlines: dict[str, datetime] = {}
        # agent id -> the expiry command already sent for it.
        self._expiring: dict[str, str] = {}
        self.decided = 0
        self._fetch_wait: AdaptiveFetchWait | None = getattr(app, "fetch_wait", None)
        app.agent(self.commands, name=f"{topics.prefix}.agents.decider")(self._decide_stream)
        app.timer(settings.liveness_interval, name=f"{topics.prefix}.agents.liveness")(
            self._expire_silent
        )

    async def _decide_stream(self, stream: Any) -> None:
        """Decide whatever has arrived, as one batch, then ack it.

        Iterating a Faust stream costs several event-loop turns per event, far more than
        deciding a heartbeat; so the decider drains its channel's queue directly. Events
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
            while len(batch) < limit and not queue.empty():
                batch.append(queue.get_nowait())
            self.decide_batch(batch)
            for event in batch:
                event.ack()

    def decide_batch(self, batch: Sequence[Any]) -> None:
        """Decide a batch of command records; synchronous, so it is atomic per batch."""
        if self._fetch_wait is not None:
            self._fetch_wait.touch()
        now = datetime.now(UTC)
        dirty: dict[str, tuple[AgentState, Any]] = {}
        n = self.settings.partitions
        for record in batch:
            message = record.message
            raw_key: bytes | None = message.key
            try:
                command = AGENT_COMMAND.validate_json(message.value)
            except ValidationError as exc:
                self._publish(raw_key, _undecodable(raw_key, exc, now))
                continue
            key = command.agent_id
            key_bytes = key.encode()
            if raw_key is not None and raw_key != key_bytes:
                reason = f"record key {raw_key!r} must equal the command's agent_id {key!r}"
                self._publish(key_bytes, reject(command, now, "invalid", reason))
                continue
            owner = partition_for(key_bytes, n)
            if message.partition != owner:
                # Produced with another partitioner (librdkafka's default, say): hand it
                # to the partition that owns the agent, which decides it.
                self.commands.send_soon(key=key_bytes, value=message.value, partition=owner)
                continue
            state = dirty[key][0] if key in dirty else self.table.get(key) or initial_state()
            if isinstance(command, ExpireAgent):
                # Answered, whatever the answer: the timer may ask again if still silent.
                self._expiring.pop(key, None)
                command = self._with_known_last_seen(command, state)
            events = decide(command, state, now, self.policy)
            for event in events:
                state = evolve(state, event)
                self._publish(key_bytes, event)
            if events and not rejected(events):
                dirty[key] = (state, record)
            from_agent = isinstance(command, RecordHeartbeat | RegisterAgent)
            if from_agent or events:
                self._track(
                    key, state, heard_at=now if from_agent and not rejected(events) else None
                )
            self.decided += 1
        for key, (state, record) in dirty.items():
            with _event_context(record):
                self.table[key] = state

    def _with_known_last_seen(self, command: ExpireAgent, state: AgentState) -> ExpireAgent:
        """An expiry is judged against the latest sign of life this worker knows of."""
        deadline = self._deadlines.get(command.agent_id)
        if deadline is None or state.agent is None:
            return command
        known = deadline - timedelta(seconds=state.agent.ttl_seconds)
        return command.model_copy(update={"last_seen_at": max(known, command.last_seen_at)})

    async def _expire_silent(self) -> None:
        """Ask, through the log, to expire each owned agent whose deadline has passed."""
        now = datetime.now(UTC)
        overdue = [key for key, deadline in self._deadlines.items() if deadline < now]
        if not overdue:
            return
        owned = self.owned_partitions()
        n = self.settings.partitions
        for key in overdue:
            owner = partition_for(key.encode(), n)
            state = self.table.get(key)
            if owner not in owned or state is None or state.agent is None:
                self._deadlines.pop(key, None)
                continue
            command_id = expiry_command_id(key, state)
            if self._expiring.get(key) == command_id:
                continue  # asked already; the answer is on its way
            self._expiring[key] = command_id
            last_seen = self._deadlines[key] - timedelta(seconds=state.agent.ttl_seconds)
            command = ExpireAgent(
                command_id=command_id,
                issued_at=now,
                issued_by="liveness-timer",
                agent_id=key,
                last_seen_at=last_seen,
            )
            self.commands.send_soon(
                key=key.encode(),
                value=command.model_dump_json(exclude_none=True).encode(),
                partition=owner,
            )

    def owned_partitions(self) -> set[int]:
        topic = self.commands.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def agents_owned(self) -> int:
        return len(self._deadlines)

    def _track(self, key: str, state: AgentState, heard_at: datetime | None) -> None:
        """Move an agent's silence deadline to the latest sign of life we know of."""
        agent = state.agent
        self._expiring.pop(key, None)
        if agent is None or agent.status is AgentStatus.OFFLINE:
            self._deadlines.pop(key, None)
            return
        ttl = timedelta(seconds=agent.ttl_seconds)
        candidates = [agent.last_seen_at + ttl]
        if heard_at is not None:
            candidates.append(heard_at + ttl)
        if key in self._deadlines:
            candidates.append(self._deadlines[key])
        self._deadlines[key] = max(candidates)

    async def _on_recovered(self) -> None:
        """Rebuild the liveness deadlines from the recovered table (a fresh TTL for all)."""
        now = datetime.now(UTC)
        owned = self.owned_partitions()
        n = self.settings.partitions
        self._deadlines.clear()
        self._expiring.clear()
        for key, state in self.table.items():
            if partition_for(key.encode(), n) in owned and state.agent is not None:
                self._track(key, state, heard_at=now)
        logger.info(
            "registry recovered: %d live agents on partitions %s",
            len(self._deadlines),
            sorted(owned),
        )

    def _publish(self, key: bytes | None, event: AgentEvent) -> None:
        self.events.send_soon(key=key, value=AGENT_EVENT.dump_json(event, exclude_none=True))


def _serialize_like_commands(table: Any) -> None:
    """Faust derives a table's serializers from its types (JSON keys); Kolony's keys are
    raw UTF-8 like the command keys, and values go through the pydantic codec."""
    table.key_serializer = "raw"
    table.value_serializer = AGENT_STATE_CODEC


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


def rejected(events: Sequence[AgentEvent]) -> bool:
    return any(isinstance(e, CommandRejected) for e in events)


def _undecodable(raw_key: bytes | None, exc: ValidationError, now: datetime) -> CommandRejected:
    entity = raw_key.decode(errors="replace") if raw_key else None
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors()[:5]
    )
    return rejection(None, None, None, entity, now, "invalid", f"undecodable command: {problems}")
