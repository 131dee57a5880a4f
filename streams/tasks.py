"""The task processor: decides task commands, delivers work to agents, runs the task timers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import faust

from core import tasks
from core.deliveries import deliveries_for
from kolony.settings import Settings
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
from streams.codec import TASK_ENTRY_CODEC
from streams.inbox import Inbox
from streams.open_tasks import OpenTasks
from streams.policies import task_policy
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

    def __init__(self, app: faust.App, settings: Settings, view: NetworkView, inbox: Inbox) -> None:
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
        self.policy = task_policy(settings)
        self.inbox = inbox
        self.table.on_recover(self._on_recovered)
        # Open tasks on this worker's partitions, and the timer commands asked per task.
        self._open = OpenTasks()
        self._asked: dict[str, set[str]] = {}
        app.timer(settings.task_timer_interval, name=f"{topics.prefix}.tasks.timers")(
            self._run_timers
        )

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
        command: TaskCommand | None,
        state: TaskEntry,
        steps: list[tuple[TaskEvent, TaskEntry, TaskEntry]],
        now: datetime,
    ) -> None:
        for event, before, after in steps:
            for item in deliveries_for(event, before, after):
                self.inbox.deliver(self, item)
            self.view.directory.apply_task(event)
        if steps and state is not steps[0][1]:
            self._asked.pop(key, None)
            self._open.track(key, state)

    async def _run_timers(self) -> None:
        """Expire, mark overdue, route and re-assign the owned open tasks that need it."""
        if not self._open or not self.view.caught_up:
            return
        now = datetime.now(UTC)
        owned = self.owned_partitions()
        directory = self.view.directory
        for kind, key in list(self._open.due(now)):
            command = ExpireTask if kind == "expire" else MarkTaskOverdue
            self._ask(key, owned, kind, partial(command, task_id=key))
        for agent_id, keys in list(self._open.by_assignee.items()):
            status = directory.status_of(agent_id)
            if status is not None and status is not AgentStatus.OFFLINE:
                continue
            why = "went offline" if status is AgentStatus.OFFLINE else "is no longer registered"
            for key in list(keys):
                entry = self._open.entries[key]
                if tasks.needs_release(entry, directory) == agent_id:
                    release = partial(ReleaseTask, task_id=key, agent_id=agent_id, reason=why)
                    self._ask(key, owned, "release", release)
        for capability, keys in list(self._open.waiting.items()):
            if not directory.can_route(capability):
                continue
            # The most urgent first, then the oldest: the decider routes each in turn.
            for key in sorted(keys, key=self._urgency):
                self._ask(key, owned, "route", partial(RouteTask, task_id=key))

    def _urgency(self, key: str) -> tuple[int, datetime]:
        task = self._open.entries[key].task
        assert task is not None  # noqa: S101 - only open tasks are indexed
        return (-task.priority, task.created_at)

    def _ask(self, key: str, owned: set[int], kind: str, build: Callable[..., TaskCommand]) -> None:
        """Send a timer's command for ``key`` once per task version (owned partitions only)."""
        entry = self._open.entries.get(key)
        if entry is None:
            return
        if not self.owns(key, owned):
            self._open.drop(key)  # the partition moved to another worker
            return
        command_id = tasks.timer_command_id(kind, entry)
        asked = self._asked.setdefault(key, set())
        if command_id in asked:
            return  # the answer is on its way
        asked.add(command_id)
        now = datetime.now(UTC)
        self.send_command(build(command_id=command_id, issued_at=now, issued_by="task-timer"))

    def tasks_open(self) -> int:
        return len(self._open)

    async def _on_recovered(self) -> None:
        """Rebuild the open-task index from the recovered table (owned partitions only)."""
        owned = self.owned_partitions()
        self._open.clear()
        self._asked.clear()
        for key, entry in self.table.items():
            if self.owns(key, owned):
                self._open.track(key, entry)
        logger.info(
            "tasks recovered: %d open tasks on partitions %s", len(self._open), sorted(owned)
        )
