"""The shared-memory processor: decides writes and deletions, notifies subscribers."""

from __future__ import annotations

from datetime import datetime

import faust

from core import memory
from kolony.settings import Settings
from schemas.memory import (
    MEMORY_COMMAND,
    MEMORY_ENTRY,
    MEMORY_EVENT,
    MemoryCommand,
    MemoryEntry,
    MemoryEvent,
)
from schemas.topics import MEMORY_TABLE
from streams.codec import MEMORY_ENTRY_CODEC
from streams.inbox import Inbox
from streams.shell import BatchDecider
from streams.view import NetworkView


class MemoryProcessor(BatchDecider[MemoryCommand, MemoryEvent, MemoryEntry]):
    """Faust shell around :mod:`core.memory`: one writer per key, so compare-and-set
    needs no locks. Subscribers (from the worker's view of the registry) get an
    ``inbox.memory_updated`` in the same batch as the event."""

    command_adapter = MEMORY_COMMAND
    event_adapter = MEMORY_EVENT
    state_adapter = MEMORY_ENTRY
    state_codec = MEMORY_ENTRY_CODEC

    def __init__(self, app: faust.App, settings: Settings, view: NetworkView, inbox: Inbox) -> None:
        topics = settings.topics
        super().__init__(
            app,
            settings,
            commands=topics.memory_commands,
            events=topics.memory_events,
            table=MEMORY_TABLE,
            name=f"{topics.prefix}.memory.decider",
        )
        self.view = view
        self.inbox = inbox

    def initial(self) -> MemoryEntry:
        return memory.initial_state()

    async def ready(self) -> None:
        await self.view.wait_caught_up()  # subscribers come from the view

    def decide(
        self, command: MemoryCommand, state: MemoryEntry, now: datetime
    ) -> list[MemoryEvent]:
        return memory.decide(command, state, now)

    def evolve(self, state: MemoryEntry, event: MemoryEvent) -> MemoryEntry:
        return memory.evolve(state, event)

    def decided_one(
        self,
        key: str,
        command: MemoryCommand | None,
        state: MemoryEntry,
        steps: list[tuple[MemoryEvent, MemoryEntry, MemoryEntry]],
        now: datetime,
    ) -> None:
        subscribers = self.view.directory.subscribers_of(key)
        if not subscribers:
            return
        for event, before, _ in steps:
            for item in memory.deliveries_for(event, before, subscribers):
                self.inbox.deliver(self, item)
