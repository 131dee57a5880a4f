"""Gateway read models folded from the logs: the task board and the recent-event feed.

(The agent directory, which stream workers keep too, lives in :mod:`core.directory`.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from core import tasks
from schemas.base import CommandRejected
from schemas.events import AnyEvent, subject_of
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


class EventFeed:
    """The last N events, and live fan-out to subscribers (SSE clients)."""

    def __init__(self, keep: int) -> None:
        self._recent: deque[AnyEvent] = deque(maxlen=keep)
        self._subscribers: set[asyncio.Queue[AnyEvent]] = set()

    def append(self, event: AnyEvent) -> None:
        self._recent.append(event)
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    def recent(self, limit: int, type_prefix: str | None = None) -> list[AnyEvent]:
        chosen = [e for e in self._recent if type_prefix is None or e.type.startswith(type_prefix)]
        return chosen[-limit:] if limit else []

    @contextlib.asynccontextmanager
    async def subscribe(self, buffer: int = 1_000) -> AsyncIterator[asyncio.Queue[AnyEvent]]:
        """A queue of every event from now on; a subscriber too slow to drain it misses events."""
        queue: asyncio.Queue[AnyEvent] = asyncio.Queue(maxsize=buffer)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
