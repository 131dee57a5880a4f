"""The event feed: the last N events of every log, and live fan-out to subscribers (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from schemas.events import AnyEvent


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
