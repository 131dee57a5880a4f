"""Read models folded from the event log: the agent directory and the recent-event feed."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from core import registry
from schemas.registry import AgentEvent, AgentState, RegisteredAgent


class AgentDirectory:
    """Every agent's state, folded with the decider's own ``evolve``."""

    def __init__(self) -> None:
        self._states: dict[str, AgentState] = {}

    def apply(self, event: AgentEvent) -> None:
        key = getattr(event, "agent_id", None)
        if key is None:
            return
        before = self._states.get(key) or registry.initial_state()
        self._states[key] = registry.evolve(before, event)

    def get(self, agent_id: str) -> RegisteredAgent | None:
        state = self._states.get(agent_id)
        return state.agent if state else None

    def agents(self) -> list[RegisteredAgent]:
        return [s.agent for s in self._states.values() if s.agent is not None]

    def state(self, agent_id: str) -> AgentState:
        return self._states.get(agent_id) or registry.initial_state()


class EventFeed:
    """The last N events, and live fan-out to subscribers (SSE clients)."""

    def __init__(self, keep: int) -> None:
        self._recent: deque[AgentEvent] = deque(maxlen=keep)
        self._subscribers: set[asyncio.Queue[AgentEvent]] = set()

    def append(self, event: AgentEvent) -> None:
        self._recent.append(event)
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    def recent(self, limit: int, type_prefix: str | None = None) -> list[AgentEvent]:
        chosen = [e for e in self._recent if type_prefix is None or e.type.startswith(type_prefix)]
        return chosen[-limit:] if limit else []

    @contextlib.asynccontextmanager
    async def subscribe(self, buffer: int = 1_000) -> AsyncIterator[asyncio.Queue[AgentEvent]]:
        """A queue of every event from now on; a subscriber too slow to drain it misses events."""
        queue: asyncio.Queue[AgentEvent] = asyncio.Queue(maxsize=buffer)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
