"""The task processor: decides task commands, delivers work to agents, runs the task timers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import faust

from core import tasks
from core.deliveries import deliveries_for
from kolony.settings import Settings
from schemas.inbox import INBOX_ITEM
from schemas.registry import AgentStatus
from schemas.tasks import (
    TASK_COMMAND,
    TASK_ENTRY,
    TASK_EVENT,
    ExpireTask,
    MarkTaskOverdue,
    ReleaseTask,
    RouteTask,
    TaskCommand,
    TaskEntry,
    TaskEvent,
)
from schemas.topics import TASKS_TABLE
from streams.codec import TASK_ENTRY_CODEC, raw_topic
from streams.partitioning import partition_for
from streams.shell import BatchDecider
from streams.view import NetworkView

logger = logging.getLogger(__name__)


class TaskProcessor(BatchDecider[TaskCommand, TaskEvent, TaskEntry]):
    """Faust shell around :mod:`core.tasks`: one writer per task id.

    Routing asks the worker's :class:`NetworkView`. Deliveries go to the agents' inbox
    topic, keyed by agent id. Timers (TTL, due dates, waiting tasks, vanished assignees)
    act on owned partitions only and, like every other change, go through the log.
    """

    command_adapter = TASK_COMMAND
    event_adapter = TASK_EVENT
    state_adapter = TASK_ENTRY
    state_codec = TASK_ENTRY_CODEC

    def __init__(self, app: faust.App, settings: Settings, view: NetworkView) -> None:
        topics = settings.topics
        super().__init__(
            app,
            settings,
            commands=topics.task_commands,
            events=topics.task_events,
            table=TASKS_TABLE,
            name=f"{topics.prefix}.tasks.decider",
        )
        self.view = view
        self.policy = settings.task_policy
        self.inbox = raw_topic(app, topics.agent_inbox, settings.inbox_partitions)
        self.table.on_recover(self._on_recovered)
        # Open tasks on this worker's partitions, and the timer commands asked per task.
        self._open: dict[str, TaskEntry] = {}
        self._asked: dict[str, set[str]] = {}
        app.timer(settings.task_timer_interval, name=f"{topics.prefix}.tasks.timers")(
            self._run_timers
        )

    def key_of(self, command: TaskCommand) -> str:
        return command.task_id

    def initial(self) -> TaskEntry:
        return tasks.initial_state()

    async def ready(self) -> None:
        # Routing needs to know the agents: wait until the view has read the logs once.
        await self.view.wait_caught_up()

    def decide(self, command: TaskCommand, state: TaskEntry, now: datetime) -> list[TaskEvent]:
        return tasks.decide(command, state, now, self.view.directory, self.policy)

    def evolve(self, state: TaskEntry, event: TaskEvent) -> TaskEntry:
        return tasks.evolve(state, event)

    def decided_one(
        self,
        key: str,
        command: TaskCommand,
        before: TaskEntry,
        after: TaskEntry,
        events: list[TaskEvent],
        now: datetime,
    ) -> None:
        entry = before
        for event in events:
            following = tasks.evolve(entry, event)
            for item in deliveries_for(event, entry, following):
                self._deliver(item.agent_id, INBOX_ITEM.dump_json(item, exclude_none=True))
            self.view.directory.apply_task(event)
            entry = following
        if after is not before:
            self._asked.pop(key, None)
            self._track(key, after)

    def _deliver(self, agent_id: str, payload: bytes) -> None:
        key = agent_id.encode()
        self.send(self.inbox, key, payload, partition_for(key, self.settings.inbox_partitions))

    def _track(self, key: str, entry: TaskEntry) -> None:
        task = entry.task
        if task is None or entry.deleted or tasks.is_terminal(task.status.state):
            self._open.pop(key, None)
        else:
            self._open[key] = entry

    async def _run_timers(self) -> None:
        """Expire, mark overdue, route and re-assign the owned open tasks that need it."""
        if not self._open or not self.view.caught_up:
            return
        now = datetime.now(UTC)
        owned = self.owned_partitions()
        for key, entry in list(self._open.items()):
            if entry.task is None or not self.owns(key, owned):
                self._open.pop(key, None)
                continue
            for command in self._timer_commands(key, entry, now):
                asked = self._asked.setdefault(key, set())
                if command.command_id not in asked:  # else the answer is on its way
                    asked.add(command.command_id)
                    self.send_command(key, command)

    def _timer_commands(self, key: str, entry: TaskEntry, now: datetime) -> Iterator[TaskCommand]:
        """What the timers want done to an open task now."""
        task = entry.task
        if task is None:
            return
        directory = self.view.directory

        def envelope(kind: str) -> dict[str, Any]:
            command_id = tasks.timer_command_id(kind, entry)
            return {"command_id": command_id, "issued_at": now, "issued_by": "task-timer"}

        if task.expires_at is not None and task.expires_at <= now:
            yield ExpireTask(**envelope("expire"), task_id=key)
            return
        if task.due_at is not None and not task.overdue and task.due_at <= now:
            yield MarkTaskOverdue(**envelope("overdue"), task_id=key)
        lost = tasks.needs_release(entry, directory)
        if lost is not None:
            offline = directory.status_of(lost) is AgentStatus.OFFLINE
            why = "went offline" if offline else "is no longer registered"
            yield ReleaseTask(**envelope("release"), task_id=key, agent_id=lost, reason=why)
        elif tasks.is_waiting(entry) and directory.can_route(task.capability or ""):
            yield RouteTask(**envelope("route"), task_id=key)

    def tasks_open(self) -> int:
        return len(self._open)

    async def _on_recovered(self) -> None:
        """Rebuild the open-task index from the recovered table (owned partitions only)."""
        owned = self.owned_partitions()
        self._open.clear()
        self._asked.clear()
        for key, entry in self.table.items():
            if self.owns(key, owned):
                self._track(key, entry)
        logger.info(
            "tasks recovered: %d open tasks on partitions %s", len(self._open), sorted(owned)
        )
