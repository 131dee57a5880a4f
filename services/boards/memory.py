"""The gateway's read model of shared memory: every key's entry and its recent history."""

from __future__ import annotations

from collections import deque

from core import memory
from schemas.base import CommandRejected
from schemas.memory import MemoryEntry, MemoryEvent, MemoryItem


class MemoryBoard:
    """Folded with the decider's own ``evolve``; keeps the last ``history`` events per key."""

    def __init__(self, history: int) -> None:
        self.history = history
        self._entries: dict[str, MemoryEntry] = {}
        self._events: dict[str, deque[MemoryEvent]] = {}

    def apply(self, event: MemoryEvent) -> tuple[MemoryEntry, MemoryEntry] | None:
        """Fold ``event``; the key's entry before and after it (None: nothing changed)."""
        if isinstance(event, CommandRejected):
            return None
        before = self._entries.get(event.key) or memory.initial_state()
        after = memory.evolve(before, event)
        if after is before:
            return None
        self._entries[event.key] = after
        self._events.setdefault(event.key, deque(maxlen=self.history)).append(event)
        return before, after

    def get(self, key: str) -> MemoryItem | None:
        entry = self._entries.get(key)
        return entry.item if entry is not None else None

    def version(self, key: str) -> int:
        entry = self._entries.get(key)
        return entry.item.version if entry is not None and entry.item is not None else 0

    def items(self, prefix: str = "") -> list[MemoryItem]:
        """Current items whose key starts with ``prefix``, by key."""
        return sorted(
            (
                e.item
                for k, e in self._entries.items()
                if e.item is not None and k.startswith(prefix)
            ),
            key=lambda item: item.key,
        )

    def events(self, key: str) -> list[MemoryEvent]:
        return list(self._events.get(key, ()))

    def known(self, key: str) -> bool:
        """Ever written (it may be deleted now)."""
        return key in self._entries
