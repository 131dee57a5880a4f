"""Message operations: the one place REST, WebSocket, CLI and MCP all call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic import BaseModel

from core.queries import page_of
from kolony.commands import new_envelope
from schemas.a2a import Message, Part, Role
from schemas.messages import (
    OPERATOR,
    AckMessages,
    BroadcastMessage,
    DeleteMessage,
    MessageRecord,
    MessageSent,
    SendMessage,
)
from schemas.requests import SendMessageRequest
from services.boards.messages import MessageFilter, StoredMessage
from services.hub import Hub
from services.usecases.registry import get_agent, require_caught_up
from services.usecases.tasks import UnknownTask


class UnknownMessage(LookupError):
    def __init__(self, message_id: str) -> None:
        super().__init__(f"message {message_id!r} does not exist")
        self.message_id = message_id


class MessageView(BaseModel):
    """A message as the read API shows it: the record, its recipients, who has read it."""

    record: MessageRecord
    recipients: list[str]
    read_by: list[str]


@dataclass(frozen=True)
class MessagePage:
    messages: list[MessageView]
    next_page_token: str | None
    total_size: int


def _message_of(request: SendMessageRequest, sender: str) -> Message:
    if request.message is not None:
        message = request.message
        if request.message_id is not None and request.message_id != message.message_id:
            raise ValueError("message_id differs from message.message_id")
        return message
    return Message(
        message_id=request.message_id or str(uuid.uuid4()),
        role=Role.USER if sender == OPERATOR else Role.AGENT,
        parts=[Part(text=request.content)],
        task_id=request.task_id,
        metadata=request.metadata,
    )


async def send_message(
    hub: Hub, request: SendMessageRequest, *, issued_by: str = "gateway"
) -> MessageView:
    """Send (or broadcast) and answer once the worker has decided and delivered it.

    Unknown recipients, senders and tasks are refused before anything is published;
    a message id already sent by this sender answers with that message (a safe retry).
    """
    require_caught_up(hub)
    sender = request.sender_id or OPERATOR
    if request.sender_id is not None:
        get_agent(hub, sender)
    for agent_id in request.recipients:
        get_agent(hub, agent_id)
    if request.task_id is not None and hub.board.get(request.task_id) is None:
        raise UnknownTask(request.task_id)
    message = _message_of(request, sender)
    sent = hub.messages.get(message.message_id)
    if sent is not None and sent.record.sender_id == sender:
        return view_of(sent)
    command: SendMessage | BroadcastMessage
    if request.is_broadcast:
        command = BroadcastMessage(
            **new_envelope(issued_by),
            sender_id=sender,
            capability=request.capability,
            message_type=request.message_type,
            message=message,
        )
    else:
        command = SendMessage(
            **new_envelope(issued_by),
            sender_id=sender,
            to=tuple(request.recipients),
            task_id=request.task_id,
            message_type=request.message_type,
            message=message,
        )
    event = await hub.execute(command)
    assert isinstance(event, MessageSent)  # noqa: S101 - the decider's only answer but a refusal
    stored = hub.messages.get(message.message_id)
    return view_of(stored) if stored is not None else _view(event)


def get_message(hub: Hub, message_id: str) -> MessageView:
    require_caught_up(hub)
    return view_of(_require(hub, message_id))


def list_messages(
    hub: Hub, where: MessageFilter, *, page_size: int = 50, page_token: str | None = None
) -> MessagePage:
    """Matching messages, newest first (:class:`ValueError`: a bad page token)."""
    require_caught_up(hub)
    chosen = hub.messages.select(where)
    page, next_token = page_of(chosen, page_size, page_token)
    return MessagePage([view_of(s) for s in page], next_token, len(chosen))


def recent_messages(hub: Hub, limit: int) -> list[MessageView]:
    require_caught_up(hub)
    return [view_of(s) for s in hub.messages.select(MessageFilter())[:limit]]


def task_thread(hub: Hub, task_id: str) -> list[MessageView]:
    """The task's messages, oldest first."""
    require_caught_up(hub)
    if hub.board.entry(task_id) is None:
        raise UnknownTask(task_id)
    return [view_of(s) for s in hub.messages.thread(task_id)]


def mailbox(hub: Hub, agent_id: str, *, unread_only: bool = False) -> list[MessageView]:
    """What ``agent_id`` received, oldest first."""
    require_caught_up(hub)
    get_agent(hub, agent_id)
    return [view_of(s) for s in hub.messages.mailbox(agent_id, unread_only=unread_only)]


async def receive(hub: Hub, agent_id: str, *, limit: int = 100) -> list[MessageView]:
    """Thronglets' receive: the agent's unread messages, oldest first, now marked read."""
    unread = mailbox(hub, agent_id, unread_only=True)[:limit]
    if unread:
        await ack(hub, agent_id, [m.record.message_id for m in unread])
    return unread


async def ack(
    hub: Hub, agent_id: str, message_ids: list[str], *, issued_by: str = "gateway"
) -> list[str]:
    """Mark messages read; answers with the ids that were unread until now."""
    require_caught_up(hub)
    get_agent(hub, agent_id)
    for message_id in message_ids:
        _require(hub, message_id)
    fresh = [m for m in dict.fromkeys(message_ids) if hub.messages.is_unread(agent_id, m)]
    command = AckMessages(
        **new_envelope(issued_by), agent_id=agent_id, message_ids=tuple(dict.fromkeys(message_ids))
    )
    await hub.execute(command)
    return fresh


async def delete_message(
    hub: Hub, message_id: str, *, reason: str | None = None, issued_by: str = "gateway"
) -> None:
    require_caught_up(hub)
    stored = _require(hub, message_id)
    command = DeleteMessage(
        **new_envelope(issued_by),
        sender_id=stored.record.sender_id,
        message_id=message_id,
        reason=reason,
    )
    await hub.execute(command)


def view_of(stored: StoredMessage) -> MessageView:
    return MessageView(
        record=stored.record, recipients=list(stored.recipients), read_by=sorted(stored.read_by)
    )


def _view(event: MessageSent) -> MessageView:
    return MessageView(record=event.record, recipients=list(event.recipients), read_by=[])


def _require(hub: Hub, message_id: str) -> StoredMessage:
    stored = hub.messages.get(message_id)
    if stored is None:
        raise UnknownMessage(message_id)
    return stored
