"""The open tasks of a worker's partitions, indexed for its timers.

A timer tick must not cost a scan of every open task: deadlines sit in a heap, tasks are
grouped by assignee (one status lookup per agent) and waiting tasks by capability.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from core import tasks
from schemas.tasks import TaskEntry, is_terminal


class OpenTasks:
    def __init__(self) -> None:
        self.entries: dict[str, TaskEntry] = {}
        self.by_assignee: dict[str, set[str]] = defaultdict(set)
        self.waiting: dict[str, set[str]] = defaultdict(set)
        self._deadlines: list[tuple[datetime, str, str]] = []  # (when, kind, task id)

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries.clear()
        self.by_assignee.clear()
        self.waiting.clear()
        self._deadlines.clear()

    def track(self, key: str, entry: TaskEntry) -> None:
        """Index ``entry`` as the task's latest state (dropping it when it is finished)."""
        self.drop(key)
        task = entry.task
        if task is None or entry.deleted or is_terminal(task.status.state):
            return
        self.entries[key] = entry
        if task.assignee_id is not None:
            self.by_assignee[task.assignee_id].add(key)
        elif tasks.is_waiting(entry) and task.capability is not None:
            self.waiting[task.capability].add(key)
        if task.expires_at is not None:
            heapq.heappush(self._deadlines, (task.expires_at, "expire", key))
        if task.due_at is not None and not task.overdue:
            heapq.heappush(self._deadlines, (task.due_at, "overdue", key))

    def drop(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        task = entry.task if entry is not None else None
        if task is None:
            return
        for index, name in ((self.by_assignee, task.assignee_id), (self.waiting, task.capability)):
            if name is not None and name in index:
                index[name].discard(key)
                if not index[name]:
                    del index[name]
        # Deadlines stay in the heap; ``due`` skips those of tasks that moved on.

    def due(self, now: datetime) -> Iterator[tuple[str, str]]:
        """(kind, task id) of every deadline that passed; each is handed out once."""
        while self._deadlines and self._deadlines[0][0] <= now:
            when, kind, key = heapq.heappop(self._deadlines)
            entry = self.entries.get(key)
            task = entry.task if entry is not None else None
            if task is None:
                continue
            current = task.expires_at if kind == "expire" else task.due_at
            if current == when and not (kind == "overdue" and task.overdue):
                yield kind, key
