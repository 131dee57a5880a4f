"""Messages between agents: the public record, the commands that send them, the events.

A message is an A2A ``Message`` with an envelope: who sent it, to whom, in which task
thread, of which type. Sends are keyed by the sender's agent id, so one writer decides
a sender's messages in order; read receipts (acks) are keyed by the reading agent.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from schemas.a2a import Message
from schemas.base import CommandEnvelope, CommandRejected, EntityId, EventEnvelope, Frozen
from schemas.tasks import Capability, Reason

OPERATOR = "operator"
"""The sender id of messages sent by operators and services rather than by an agent."""

MAX_RECIPIENTS = 1_000
MAX_ACKS = 1_000


class MessageType(StrEnum):
    """Seed 003's message types."""

    TEXT = "text"
    SYSTEM = "system"
    ERROR = "error"
    INFO = "info"


class Delivery(StrEnum):
    DIRECT = "direct"  # to named agents
    BROADCAST = "broadcast"  # to every online agent, or every online agent with a capability
    TASK = "task"  # in a task's thread: to its requester and assignee (and any named agents)


class MessageRecord(Frozen):
    """A message as the hub keeps it and delivers it."""

    message_id: str
    sender_id: str
    delivery: Delivery
    message_type: MessageType = MessageType.TEXT
    message: Message
    task_id: str | None = None
    capability: str | None = Field(default=None, description="a broadcast's capability filter")
    recipient_count: int = Field(default=0, description="how many agents it was delivered to")
    sent_at: AwareDatetime
    seq: int = Field(
        default=0, description="the sender's message number: increases with every message sent"
    )


# Commands: imperative, on the messages command topic.


class SendMessage(CommandEnvelope):
    """A direct or task-thread message, keyed by ``sender_id``.

    Give ``to`` (agent ids), ``task_id`` (the task's requester and assignee hear it), or both.
    """

    type: Literal["message.send"] = "message.send"
    sender_id: EntityId
    to: tuple[EntityId, ...] = Field(default=(), max_length=MAX_RECIPIENTS)
    task_id: EntityId | None = None
    message_type: MessageType = MessageType.TEXT
    message: Message


class BroadcastMessage(CommandEnvelope):
    """To every agent that is not offline (optionally: with ``capability``), keyed by sender."""

    type: Literal["message.broadcast"] = "message.broadcast"
    sender_id: EntityId
    capability: Capability | None = None
    message_type: MessageType = MessageType.TEXT
    message: Message


class AckMessages(CommandEnvelope):
    """The agent has read these messages; keyed by the reading agent's id."""

    type: Literal["message.ack"] = "message.ack"
    agent_id: EntityId
    message_ids: tuple[Annotated[str, Field(min_length=1, max_length=128)], ...] = Field(
        min_length=1, max_length=MAX_ACKS
    )


class DeleteMessage(CommandEnvelope):
    """Tombstone a message: hidden from reads, kept in the log. Keyed by its sender."""

    type: Literal["message.delete"] = "message.delete"
    sender_id: EntityId
    message_id: Annotated[str, Field(min_length=1, max_length=128)]
    reason: Reason | None = None


MessageCommand = Annotated[
    SendMessage | BroadcastMessage | AckMessages | DeleteMessage, Field(discriminator="type")
]
MESSAGE_COMMAND = TypeAdapter(MessageCommand)


def message_key(command: MessageCommand) -> str:
    """The agent whose messaging state a command changes: the sender, or the reader."""
    return command.agent_id if isinstance(command, AckMessages) else command.sender_id


# Events: past tense, on the messages event topic, keyed like their commands.


class MessageSent(EventEnvelope):
    """Decided and delivered: each recipient got an ``inbox.message`` in the same batch."""

    type: Literal["message.sent"] = "message.sent"
    sender_id: str
    record: MessageRecord
    recipients: tuple[str, ...] = ()


class MessagesAcked(EventEnvelope):
    type: Literal["message.acked"] = "message.acked"
    agent_id: str
    message_ids: tuple[str, ...]


class MessageDeleted(EventEnvelope):
    type: Literal["message.deleted"] = "message.deleted"
    sender_id: str
    message_id: str
    reason: str | None = None


MessageEvent = Annotated[
    MessageSent | MessagesAcked | MessageDeleted | CommandRejected, Field(discriminator="type")
]
MESSAGE_EVENT = TypeAdapter(MessageEvent)


class MessagingState(Frozen):
    """The messages decider's state for one agent id: the table's value.

    Message ids are remembered for a while, so a client that sends the same message again
    (a retry with a new command id) is told it was sent already instead of sending twice.
    """

    seq: int = 0
    sent: int = 0
    recent_message_ids: tuple[str, ...] = ()
    deleted_message_ids: tuple[str, ...] = ()
    recent_command_ids: tuple[str, ...] = ()


MESSAGING_STATE = TypeAdapter(MessagingState)
