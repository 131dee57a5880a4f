"""Live pushes to connected agents (WebSocket): deliveries, and agents joining and leaving.

The gateway derives each push from the events it folds, with the same functions the
stream workers use to fill the inbox topic, so a WebSocket agent hears what a Kafka
agent reads from its inbox partition (same ``delivery_id``s).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal, Protocol

from schemas.inbox import InboxItem
from schemas.registry import RegisteredAgent

Presence = Literal["joined", "left"]


class Listener(Protocol):
    def deliver(self, item: InboxItem) -> None: ...

    def presence(self, change: Presence, agent_id: str, agent: RegisteredAgent | None) -> None: ...


class Pushes:
    def __init__(self) -> None:
        self._by_agent: dict[str, set[Listener]] = defaultdict(set)
        self._everyone: set[Listener] = set()

    def join(self, listener: Listener) -> None:
        """Hear agents join and leave."""
        self._everyone.add(listener)

    def attach(self, agent_id: str, listener: Listener) -> None:
        """Hear ``agent_id``'s deliveries."""
        self._by_agent[agent_id].add(listener)

    def detach(self, listener: Listener, agent_id: str | None = None) -> None:
        self._everyone.discard(listener)
        if agent_id is not None:
            listeners = self._by_agent.get(agent_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._by_agent[agent_id]

    @property
    def active(self) -> bool:
        return bool(self._everyone or self._by_agent)

    def wants(self, agent_id: str) -> bool:
        return agent_id in self._by_agent

    def connected(self) -> int:
        return len(self._everyone)

    def deliver(self, item: InboxItem) -> None:
        for listener in tuple(self._by_agent.get(item.agent_id, ())):
            listener.deliver(item)

    def presence(self, change: Presence, agent_id: str, agent: RegisteredAgent | None) -> None:
        for listener in tuple(self._everyone):
            listener.presence(change, agent_id, agent)
