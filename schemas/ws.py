"""The WebSocket protocol at ``/ws``: JSON frames for agents in any language.

Every frame is a JSON object with a ``type``. A client frame may carry an ``id`` of the
client's choosing; the server answers each request with exactly one ``ack`` or
``error`` frame bearing that ``id``. Pushes (``message:received``, ``task:assigned``,
…) carry no ``id``. Payloads are the same models the REST API and the Kafka protocol use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, AwareDatetime, Field, TypeAdapter

from schemas.a2a import AgentCard, Artifact, Message
from schemas.base import Frozen
from schemas.limits import Json
from schemas.memory import MemoryItem, MemoryKey
from schemas.messages import MessageRecord
from schemas.registry import RegisteredAgent, ReportableStatus, TtlSeconds
from schemas.requests import (
    CreateTask,
    Id,
    KeyPrefix,
    SendMessageRequest,
    SetMemoryRequest,
    Strict,
    SubscribeRequest,
)
from schemas.tasks import Reason, StateInput, TaskAssignment, TaskRecord

PROTOCOL_VERSION = 1

RequestId = Annotated[str | int, Field(description="yours; echoed in the answer")]


class Request(Strict):
    id: RequestId | None = None
    command_id: Id | None = Field(
        default=None,
        description="the id of the command this request causes: a retry with the same id "
        "is answered with the first outcome, never applied twice",
    )


# Client -> server


class Register(Request):
    """Register (or renew) and bind this connection to the agent: its pushes come here."""

    type: Literal["agent:register"]
    card: AgentCard
    ttl_seconds: TtlSeconds | None = None


class Attach(Request):
    """Bind this connection to an agent registered already (over Kafka or REST)."""

    type: Literal["agent:attach"]
    agent_id: Id


class Heartbeat(Request):
    type: Literal["agent:heartbeat"]
    status: ReportableStatus | None = None


class Deregister(Request):
    type: Literal["agent:deregister"]
    reason: Reason | None = None


class Discover(Request):
    """A page of agents, ordered by name then id; the answer's ``next_page_token`` (absent
    on the last page) asks for the next, its ``total`` counts every page."""

    type: Literal["agent:discover"]
    capability: Annotated[str, Field(max_length=200)] | None = None
    text: Annotated[str, Field(max_length=200)] | None = None
    page_size: Annotated[int, Field(ge=1, le=1_000)] = 100
    page_token: Annotated[str, Field(max_length=200)] | None = None


class Send(Request, SendMessageRequest):
    """``message:send``: as ``POST /messages``; the sender is this connection's agent."""

    type: Literal["message:send"]


class Receive(Request):
    """Unread messages, oldest first, marked read (Thronglets' receive)."""

    type: Literal["message:receive"]
    limit: int = Field(default=100, ge=1, le=1_000)


class Ack(Request):
    type: Literal["message:ack"]
    message_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=1_000
    )


class TaskCreate(Request):
    """``task:create``: ``task`` is the body of ``POST /tasks``; the requester is this
    connection's agent."""

    type: Literal["task:create"]
    task: CreateTask


class TaskAssign(Request):
    type: Literal["task:assign"]
    task_id: Id
    agent_id: Id


class TaskUpdate(Request):
    """Report progress or an outcome on a task this agent holds."""

    type: Literal["task:update"]
    task_id: Id
    state: StateInput = Field(validation_alias=AliasChoices("state", "status"))
    message: Message | Annotated[str, Field(max_length=100_000)] | None = None
    artifacts: list[Artifact] = Field(default_factory=list, max_length=64)
    result: Json = None
    reason: Reason | None = None


class TaskGet(Request):
    type: Literal["task:get"]
    task_id: Id


class TaskCancel(Request):
    type: Literal["task:cancel"]
    task_id: Id
    reason: Reason | None = None


class MemorySet(Request, SetMemoryRequest):
    """``memory:set``: as ``PUT /memory/{key}``; the writer is this connection's agent."""

    type: Literal["memory:set"]
    key: MemoryKey


class MemoryGet(Request):
    type: Literal["memory:get"]
    key: MemoryKey


class MemoryList(Request):
    """A page of the keys under ``prefix`` this agent may read (``next_page_token`` asks
    for the next, ``total`` counts every page)."""

    type: Literal["memory:list"]
    prefix: KeyPrefix = ""
    page_size: Annotated[int, Field(ge=1, le=1_000)] = 100
    page_token: Annotated[str, Field(max_length=200)] | None = None


class MemoryDelete(Request):
    type: Literal["memory:delete"]
    key: MemoryKey
    expected_version: int | None = Field(default=None, ge=1)


class MemorySubscribe(Request, SubscribeRequest):
    type: Literal["memory:subscribe"]


class MemoryUnsubscribe(Request, SubscribeRequest):
    type: Literal["memory:unsubscribe"]


ClientFrame = Annotated[
    Register
    | Attach
    | Heartbeat
    | Deregister
    | Discover
    | Send
    | Receive
    | Ack
    | TaskCreate
    | TaskAssign
    | TaskUpdate
    | TaskGet
    | TaskCancel
    | MemorySet
    | MemoryGet
    | MemoryList
    | MemoryDelete
    | MemorySubscribe
    | MemoryUnsubscribe,
    Field(discriminator="type"),
]
CLIENT_FRAME = TypeAdapter(ClientFrame)


# Server -> client


class Hello(Frozen):
    """The first frame on every connection."""

    type: Literal["hello"] = "hello"
    protocol_version: int = PROTOCOL_VERSION
    agent_id: str | None = Field(default=None, description="set when the URL named an agent")


class AckFrame(Frozen):
    """The answer to a request: ``data`` is what the matching REST call answers."""

    type: Literal["ack"] = "ack"
    id: RequestId | None = None
    request: str
    data: Any = None


class ErrorFrame(Frozen):
    """A refused or malformed frame. The connection stays open."""

    type: Literal["error"] = "error"
    id: RequestId | None = None
    request: str | None = None
    code: str = Field(
        description="invalid, forbidden, not_found, conflict, busy, app_failed, unavailable"
    )
    detail: str
    current_version: int | None = None


class MessageReceived(Frozen):
    type: Literal["message:received"] = "message:received"
    delivery_id: str
    message: MessageRecord


class TaskAssignedPush(Frozen):
    type: Literal["task:assigned"] = "task:assigned"
    delivery_id: str
    task: TaskRecord
    assignment: TaskAssignment


class TaskUpdatedPush(Frozen):
    type: Literal["task:updated"] = "task:updated"
    delivery_id: str
    role: str
    task: TaskRecord


class MemoryUpdatedPush(Frozen):
    type: Literal["memory:updated"] = "memory:updated"
    delivery_id: str
    key: str
    version: int
    deleted: bool = False
    updated_by: str | None = None
    item: MemoryItem | None = None


class AgentJoined(Frozen):
    type: Literal["agent:joined"] = "agent:joined"
    agent: RegisteredAgent


class AgentLeft(Frozen):
    type: Literal["agent:left"] = "agent:left"
    agent_id: str
    reason: Literal["deregistered", "offline"]
    at: AwareDatetime | None = None


ServerFrame = Annotated[
    Hello
    | AckFrame
    | ErrorFrame
    | MessageReceived
    | TaskAssignedPush
    | TaskUpdatedPush
    | MemoryUpdatedPush
    | AgentJoined
    | AgentLeft,
    Field(discriminator="type"),
]
SERVER_FRAME = TypeAdapter(ServerFrame)
