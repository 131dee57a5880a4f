"""A hub without a broker, for tests of the use cases, read models and doors: what the gateway
publishes is decided at once by the same pure deciders the worker runs (``core``), and the
events are folded into the hub as if read back from the log.

What it leaves out is the worker's and Kafka's part (partitions, offsets, timers, inbox
deliveries, crashes); the tests that need those run against Apache Kafka.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from core import apps, memory, messages, registry, tasks
from core.directory import AgentDirectory
from core.envelopes import rejection
from kolony.settings import Settings
from schemas.apps import APP_COMMAND, APP_EVENT
from schemas.base import CommandRejected
from schemas.memory import MEMORY_COMMAND, MEMORY_EVENT
from schemas.messages import MESSAGE_COMMAND, MESSAGE_EVENT
from schemas.registry import AGENT_COMMAND, AGENT_EVENT
from schemas.system import WorkerBeacon
from schemas.tasks import TASK_COMMAND, TASK_EVENT
from services.hub import Hub
from streams.policies import app_policy, registry_policy, task_policy


@dataclass
class _Record:
    key: bytes
    value: bytes
    offset: int
    timestamp: int


@dataclass
class _Log:
    events: str
    commands: TypeAdapter[Any]
    event_adapter: TypeAdapter[Any]
    initial: Callable[[], Any]
    decide: Callable[[Any, Any, datetime], list[Any]]
    evolve: Callable[[Any, Any], Any]


class InMemoryLog:
    """Stands in for the hub's producer: ``send_and_wait`` decides the command and folds its
    events into the hub before it returns, so the hub's ``execute`` finds its outcome."""

    def __init__(self, hub: Hub, now: Callable[[], datetime] | None = None) -> None:
        self.hub = hub
        self.now = now or (lambda: datetime.now(UTC))
        self.roster = AgentDirectory()  # the worker's view of the network
        self.states: dict[tuple[str, str], Any] = {}
        self.published: list[Any] = []  # every command, as decoded
        self._offsets = itertools.count()
        settings = hub.settings
        t = hub.topics
        tp, ap, rp = task_policy(settings), app_policy(settings), registry_policy(settings)
        self._logs = {
            t.agent_commands: _Log(
                t.agent_events,
                AGENT_COMMAND,
                AGENT_EVENT,
                registry.initial_state,
                lambda c, s, now: registry.decide(c, s, now, rp),
                registry.evolve,
            ),
            t.task_commands: _Log(
                t.task_events,
                TASK_COMMAND,
                TASK_EVENT,
                tasks.initial_state,
                lambda c, s, now: tasks.decide(c, s, now, self.roster, tp),
                tasks.evolve,
            ),
            t.message_commands: _Log(
                t.message_events,
                MESSAGE_COMMAND,
                MESSAGE_EVENT,
                messages.initial_state,
                lambda c, s, now: messages.decide(c, s, now, self.roster),
                messages.evolve,
            ),
            t.memory_commands: _Log(
                t.memory_events,
                MEMORY_COMMAND,
                MEMORY_EVENT,
                memory.initial_state,
                memory.decide,
                memory.evolve,
            ),
            t.app_commands: _Log(
                t.app_events,
                APP_COMMAND,
                APP_EVENT,
                apps.initial_state,
                lambda c, s, now: apps.decide(c, s, now, ap),
                apps.evolve,
            ),
        }

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        log = self._logs[topic]
        now = self.now()
        entity = (key or b"").decode()
        try:
            command = log.commands.validate_json(value)
        except ValidationError as exc:
            refused = rejection(None, None, None, entity, now, "invalid", str(exc))
            self._fold(log, entity, [refused])
            return
        self.published.append(command)
        state = self.states.get((topic, entity)) or log.initial()
        events = log.decide(command, state, now)
        for event in events:
            if not isinstance(event, CommandRejected):
                state = log.evolve(state, event)
                if log.event_adapter is AGENT_EVENT:
                    self.roster.apply(event)
                elif log.event_adapter is TASK_EVENT:
                    self.roster.apply_task(event)
        self.states[topic, entity] = state
        self._fold(log, entity, events)

    def _fold(self, log: _Log, entity: str, events: list[Any]) -> None:
        stamp = int(time.time() * 1000)
        records = [
            _Record(
                key=entity.encode(),
                value=log.event_adapter.dump_json(event, exclude_none=True),
                offset=next(self._offsets),
                timestamp=stamp,
            )
            for event in events
        ]
        self.hub._on_records(log.events, records)


def in_memory_hub(settings: Settings | None = None) -> tuple[Hub, InMemoryLog]:
    """A hub caught up with an empty log, one live worker, and its commands decided in process."""
    hub = Hub(settings or Settings(bootstrap_servers="in-memory:9092"))
    log = InMemoryLog(hub)
    hub._producer = log  # type: ignore[assignment]  # what the hub calls of a producer
    hub.follower.caught_up.set()
    hub.follower.last_fetch_at = time.monotonic() + 3_600  # "the broker answers"
    hub.workers["in-memory"] = WorkerBeacon(
        worker_id="in-memory",
        app_id=hub.topics.app_id,
        at=datetime.now(UTC),
        interval_seconds=1e9,  # alive for the test's whole life
        active_partitions=(),
        agents_owned=0,
    )
    return hub, log
