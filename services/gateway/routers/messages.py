"""``/messages`` and each agent's mailbox: send, broadcast, threads, receive, ack, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel

from schemas.messages import MessageType
from schemas.requests import AckRequest, SendMessageRequest
from services.boards.messages import MessageFilter
from services.gateway.deps import HubDep, PageSize, PageToken, PathId
from services.gateway.errors import COMMAND_ERRORS
from services.usecases import messages
from services.usecases.messages import MessageView

router = APIRouter(tags=["messages"], responses=COMMAND_ERRORS)

QueryId = Annotated[str | None, Query(max_length=128)]
ListLimit = Annotated[int, Query(ge=1, le=10_000, description="at most this many")]


class MessageList(BaseModel):
    messages: list[MessageView]
    next_page_token: str | None = None
    total_size: int


class Received(BaseModel):
    agent_id: str
    messages: list[MessageView]


class Acked(BaseModel):
    agent_id: str
    acked: list[str]


class Deleted(BaseModel):
    status: str = "deleted"
    message_id: str


@router.post(
    "/messages", status_code=201, response_model=MessageView, response_model_exclude_none=True
)
async def send_message(hub: HubDep, body: SendMessageRequest) -> MessageView:
    """Send to agents (``to``), in a task's thread (``task_id``), or to everyone
    (``broadcast``, optionally only agents with ``capability``). Answers once delivered
    to the recipients' inboxes; sending the same ``message_id`` again answers the original."""
    try:
        return await messages.send_message(hub, body)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.get("/messages", response_model=MessageList, response_model_exclude_none=True)
async def list_messages(
    hub: HubDep,
    sender_id: QueryId = None,
    recipient_id: QueryId = None,
    task_id: QueryId = None,
    since: Annotated[AwareDatetime | None, Query()] = None,
    type: Annotated[MessageType | None, Query(description="text, system, error or info")] = None,
    page_size: PageSize = 50,
    page_token: PageToken = None,
) -> MessageList:
    """Messages newest first, filtered."""
    where = MessageFilter(
        sender_id=sender_id,
        recipient_id=recipient_id,
        task_id=task_id,
        since=since,
        message_type=type,
    )
    try:
        page = messages.list_messages(hub, where, page_size=page_size, page_token=page_token)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return MessageList(
        messages=page.messages, next_page_token=page.next_page_token, total_size=page.total_size
    )


@router.get("/messages/recent", response_model=list[MessageView], response_model_exclude_none=True)
async def recent_messages(
    hub: HubDep, limit: Annotated[int, Query(ge=1, le=1_000)] = 50
) -> list[MessageView]:
    return messages.recent_messages(hub, limit)


@router.get(
    "/messages/task/{task_id}", response_model=list[MessageView], response_model_exclude_none=True
)
async def task_thread(hub: HubDep, task_id: PathId, limit: ListLimit = 1_000) -> list[MessageView]:
    """A task's thread, oldest first, at most ``limit`` (``GET /messages?task_id=`` pages
    through all of it)."""
    return messages.task_thread(hub, task_id)[:limit]


@router.get("/messages/{message_id}", response_model=MessageView, response_model_exclude_none=True)
async def get_message(hub: HubDep, message_id: PathId) -> MessageView:
    return messages.get_message(hub, message_id)


@router.delete("/messages/{message_id}", response_model=Deleted)
async def delete_message(hub: HubDep, message_id: PathId) -> Deleted:
    """Hide the message from every read (a tombstone event; the log keeps the record)."""
    await messages.delete_message(hub, message_id)
    return Deleted(message_id=message_id)


@router.get(
    "/agents/{agent_id}/messages",
    response_model=list[MessageView],
    response_model_exclude_none=True,
)
async def mailbox(
    hub: HubDep,
    agent_id: PathId,
    unread: Annotated[bool, Query(description="only messages not acknowledged yet")] = False,
    limit: ListLimit = 1_000,
) -> list[MessageView]:
    """What the agent received, oldest first, at most ``limit`` (reading does not mark
    anything read; ``GET /messages?recipient_id=`` pages through all of it)."""
    return messages.mailbox(hub, agent_id, unread_only=unread)[:limit]


@router.post(
    "/agents/{agent_id}/messages/receive", response_model=Received, response_model_exclude_none=True
)
async def receive(
    hub: HubDep, agent_id: PathId, limit: Annotated[int, Query(ge=1, le=1_000)] = 100
) -> Received:
    """Thronglets' receive: the unread messages, oldest first, marked read by this call."""
    return Received(agent_id=agent_id, messages=await messages.receive(hub, agent_id, limit=limit))


@router.post("/agents/{agent_id}/messages/ack", response_model=Acked)
async def ack(hub: HubDep, agent_id: PathId, body: AckRequest) -> Acked:
    """Mark messages read; answers with those that were unread until now."""
    return Acked(agent_id=agent_id, acked=await messages.ack(hub, agent_id, body.message_ids))
