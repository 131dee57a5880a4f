"""The gateway's read model of messages: history, task threads, and each agent's mailbox.

Folded from the messages event log. A ``message.sent`` names its recipients, so each
recipient's mailbox gets the message id; ``message.acked`` marks ids read; a
``message.deleted`` hides a message everywhere (the log keeps it). Bounded: the newest
``history`` messages and, per agent, the newest ``mailbox`` ids are kept in memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from schemas.base import CommandRejected
from schemas.messages import (
    MessageDeleted,
    MessageEvent,
    MessageRecord,
    MessagesAcked,
    MessageSent,
    MessageType,
)


@dataclass
class StoredMessage:
    record: MessageRecord
    recipients: tuple[str, ...]
    event_id: str
    read_by: set[str] = field(default_factory=set)
    deleted: bool = False


@dataclass(frozen=True)
class MessageFilter:
    """``GET /messages`` filters; every given one must match."""

    sender_id: str | None = None
    recipient_id: str | None = None
    task_id: str | None = None
    since: datetime | None = None
    message_type: MessageType | None = None

    def matches(self, stored: StoredMessage) -> bool:
        record = stored.record
        return (
            (self.sender_id is None or record.sender_id == self.sender_id)
            and (self.recipient_id is None or self.recipient_id in stored.recipients)
            and (self.task_id is None or record.task_id == self.task_id)
            and (self.since is None or record.sent_at >= self.since)
            and (self.message_type is None or record.message_type is self.message_type)
        )


class Mailbox:
    """One agent's received message ids, oldest first, and which of them it has read."""

    def __init__(self) -> None:
        self.unread: OrderedDict[str, None] = OrderedDict()
        self.received: OrderedDict[str, None] = OrderedDict()
        # Acks folded before the message itself (a reader may ack what it got over Kafka
        # before this gateway has read the send): applied when the message arrives.
        self.early_acks: set[str] = set()


class MessageBoard:
    def __init__(self, history: int, mailbox: int) -> None:
        self.history = history
        self.mailbox_size = mailbox
        self._messages: OrderedDict[str, StoredMessage] = OrderedDict()
        self._mailboxes: dict[str, Mailbox] = {}
        self._threads: dict[str, list[str]] = {}
        self._seen_seq: dict[str, int] = {}  # agent id -> newest event seq folded

    def apply(self, event: MessageEvent) -> bool:
        """Fold ``event``; False if it was folded already (published twice) or refused."""
        if isinstance(event, CommandRejected):
            return False
        key = event.agent_id if isinstance(event, MessagesAcked) else event.sender_id
        if event.seq <= self._seen_seq.get(key, 0):
            return False
        self._seen_seq[key] = event.seq
        match event:
            case MessageSent():
                self._sent(event)
            case MessagesAcked():
                self._acked(event.agent_id, event.message_ids)
            case MessageDeleted():
                stored = self._messages.get(event.message_id)
                if stored is not None and stored.record.sender_id == event.sender_id:
                    stored.deleted = True
                    for agent_id in stored.recipients:
                        self._mailbox(agent_id).unread.pop(event.message_id, None)
        return True

    def _sent(self, event: MessageSent) -> None:
        record = event.record
        if record.message_id in self._messages:
            return
        self._messages[record.message_id] = StoredMessage(record, event.recipients, event.event_id)
        if record.task_id is not None:
            self._threads.setdefault(record.task_id, []).append(record.message_id)
        for agent_id in event.recipients:
            box = self._mailbox(agent_id)
            box.received[record.message_id] = None
            if record.message_id in box.early_acks:
                box.early_acks.discard(record.message_id)
                self._messages[record.message_id].read_by.add(agent_id)
            else:
                box.unread[record.message_id] = None
            while len(box.received) > self.mailbox_size:
                oldest, _ = box.received.popitem(last=False)
                box.unread.pop(oldest, None)
        while len(self._messages) > self.history:
            _, dropped = self._messages.popitem(last=False)
            thread = self._threads.get(dropped.record.task_id or "")
            if thread:
                thread.remove(dropped.record.message_id)

    def _acked(self, agent_id: str, message_ids: tuple[str, ...]) -> None:
        box = self._mailbox(agent_id)
        for message_id in message_ids:
            stored = self._messages.get(message_id)
            if message_id in box.received:
                box.unread.pop(message_id, None)
                if stored is not None:
                    stored.read_by.add(agent_id)
            elif stored is None and len(box.early_acks) < self.mailbox_size:
                box.early_acks.add(message_id)

    def _mailbox(self, agent_id: str) -> Mailbox:
        box = self._mailboxes.get(agent_id)
        if box is None:
            box = self._mailboxes[agent_id] = Mailbox()
        return box

    # reads

    def get(self, message_id: str) -> StoredMessage | None:
        stored = self._messages.get(message_id)
        return stored if stored is not None and not stored.deleted else None

    def select(self, where: MessageFilter) -> list[StoredMessage]:
        """Matching messages, newest first."""
        if where.task_id is not None:
            candidates = [self._messages[m] for m in self._threads.get(where.task_id, ())]
        elif where.recipient_id is not None:
            box = self._mailboxes.get(where.recipient_id)
            ids = box.received if box is not None else ()
            candidates = [self._messages[m] for m in ids if m in self._messages]
        else:
            candidates = list(self._messages.values())
        chosen = [s for s in candidates if not s.deleted and where.matches(s)]
        chosen.reverse()
        return chosen

    def thread(self, task_id: str) -> list[StoredMessage]:
        """A task's messages, oldest first."""
        ids = self._threads.get(task_id, ())
        return [s for m in ids if (s := self._messages[m]) and not s.deleted]

    def mailbox(self, agent_id: str, *, unread_only: bool) -> list[StoredMessage]:
        """What the agent received, oldest first."""
        box = self._mailboxes.get(agent_id)
        if box is None:
            return []
        ids = box.unread if unread_only else box.received
        return [s for m in ids if (s := self._messages.get(m)) is not None and not s.deleted]

    def is_unread(self, agent_id: str, message_id: str) -> bool:
        box = self._mailboxes.get(agent_id)
        return box is not None and message_id in box.unread
