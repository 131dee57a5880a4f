"""The messages processor: decides sends, broadcasts, acks and deletions; delivers messages."""

from __future__ import annotations

from datetime import datetime

import faust

from core import messages
from kolony.settings import Settings
from schemas.messages import (
    MESSAGE_COMMAND,
    MESSAGE_EVENT,
    MESSAGING_STATE,
    MessageCommand,
    MessageEvent,
    MessagingState,
)
from schemas.topics import MESSAGING_TABLE
from streams.codec import MESSAGING_STATE_CODEC
from streams.inbox import Inbox
from streams.shell import BatchDecider
from streams.view import NetworkView


class MessageProcessor(BatchDecider[MessageCommand, MessageEvent, MessagingState]):
    """Faust shell around :mod:`core.messages`: one writer per sender.

    A sender's messages are decided in order by one worker, which produces each
    recipient's delivery to the inbox partition of that recipient in the same batch:
    so messages from one sender reach one recipient in the order they were sent.
    """

    command_adapter = MESSAGE_COMMAND
    event_adapter = MESSAGE_EVENT
    state_adapter = MESSAGING_STATE
    state_codec = MESSAGING_STATE_CODEC

    def __init__(self, app: faust.App, settings: Settings, view: NetworkView, inbox: Inbox) -> None:
        topics = settings.topics
        super().__init__(
            app,
            settings,
            commands=topics.message_commands,
            events=topics.message_events,
            table=MESSAGING_TABLE,
            name=f"{topics.prefix}.messages.decider",
        )
        self.view = view
        self.inbox = inbox

    def initial(self) -> MessagingState:
        return messages.initial_state()

    async def ready(self) -> None:
        await self.view.wait_caught_up()

    def decide(
        self, command: MessageCommand, state: MessagingState, now: datetime
    ) -> list[MessageEvent]:
        return messages.decide(command, state, now, self.view.directory)

    def evolve(self, state: MessagingState, event: MessageEvent) -> MessagingState:
        return messages.evolve(state, event)

    def decided_one(
        self,
        key: str,
        command: MessageCommand | None,
        state: MessagingState,
        steps: list[tuple[MessageEvent, MessagingState, MessagingState]],
        now: datetime,
    ) -> None:
        for event, _, _ in steps:
            for item in messages.deliveries_for(event):
                self.inbox.deliver(self, item)
