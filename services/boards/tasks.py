"""The task board: every task folded from the task log, with its events."""

from __future__ import annotations

from core import tasks
from schemas.base import CommandRejected
from schemas.events import subject_of
from schemas.tasks import TaskEntry, TaskEvent, TaskRecord


class TaskBoard:
    """Every task's entry, folded with the decider's own ``evolve``, and its events."""

    def __init__(self) -> None:
        self._entries: dict[str, TaskEntry] = {}
        self._events: dict[str, list[TaskEvent]] = {}

    def apply(self, event: TaskEvent) -> tuple[TaskEntry, TaskEntry] | None:
        """Fold ``event``; the task's entry before and after it (None: nothing changed)."""
        task_id = subject_of(event)
        if task_id is None:
            return None
        before = self._entries.get(task_id) or tasks.initial_state()
        after = tasks.evolve(before, event)
        if after is before and not isinstance(event, CommandRejected):
            return None  # an event published twice
        if not isinstance(event, CommandRejected) or before.task is not None:
            self._events.setdefault(task_id, []).append(event)
        self._entries[task_id] = after
        return None if after is before else (before, after)

    def entry(self, task_id: str) -> TaskEntry | None:
        """The task's entry, deleted ones included (None: never submitted)."""
        entry = self._entries.get(task_id)
        return entry if entry is not None and entry.task is not None else None

    def get(self, task_id: str) -> TaskRecord | None:
        entry = self._entries.get(task_id)
        return entry.task if entry is not None and not entry.deleted else None

    def tasks(self) -> list[TaskRecord]:
        return [e.task for e in self._entries.values() if e.task is not None and not e.deleted]

    def events(self, task_id: str) -> list[TaskEvent]:
        return list(self._events.get(task_id, ()))
