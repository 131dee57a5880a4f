"""Request bodies shared by the REST gateway and the WebSocket protocol (public protocol)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from schemas.a2a import Artifact, Message
from schemas.apps import AppName, Scenario
from schemas.base import EntityId
from schemas.limits import Json, NonNullJson
from schemas.memory import MemoryKey, Principals, SubscriptionPattern
from schemas.messages import MAX_RECIPIENTS, MessageType
from schemas.tasks import (
    Capability,
    Priority,
    Reason,
    Retries,
    StateInput,
    SubmitTask,
    TaskTtl,
)

Id = EntityId
Text = Annotated[str, Field(max_length=100_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateTask(Strict):
    """Thronglets' request (``context_id``, ``initial_message``, ``metadata``), and more."""

    id: Id | None = Field(default=None, description="a task id of your own (default: a uuid)")
    context_id: Id | None = None
    initial_message: Message | Annotated[str, Field(max_length=100_000)] | None = None
    metadata: dict[str, Any] | None = None
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    priority: Priority = Field(default=Priority.NORMAL, description="1 (low) to 4 (urgent)")
    due_at: AwareDatetime | None = Field(
        default=None, validation_alias=AliasChoices("due_at", "due_date")
    )
    ttl: TaskTtl | None = Field(default=None, description="seconds until the task expires")
    input: Json = None
    requester_id: Id | None = Field(
        default=None, validation_alias=AliasChoices("requester_id", "creator_id", "requester")
    )
    assignee_id: Id | None = Field(
        default=None, validation_alias=AliasChoices("assignee_id", "agent_id", "assignee")
    )
    capability: Capability | None = None
    max_retries: Retries | None = None

    def command(
        self, envelope: dict[str, Any], task_id: str, initial_message: Message | None = None
    ) -> SubmitTask:
        """The ``task.submit`` this request asks for: the same fields, but for two names kept
        short on the wire (``id``, ``ttl``) and the first message, which the caller makes."""
        same = {name: getattr(self, name) for name in _SUBMITTED}
        return SubmitTask(
            **envelope,
            **same,
            task_id=task_id,
            ttl_seconds=self.ttl,
            initial_message=initial_message,
        )


_SUBMITTED = (CreateTask.model_fields.keys() & SubmitTask.model_fields.keys()) - {"initial_message"}


class StatusUpdate(Strict):
    """A new state (A2A's, or a seed's spelling), with what the agent has to say."""

    state: StateInput = Field(validation_alias=AliasChoices("state", "status"))
    message: Message | Annotated[str, Field(max_length=100_000)] | None = None
    artifacts: list[Artifact] = Field(default_factory=list, max_length=64)
    result: Json = None
    reason: Reason | None = None
    agent_id: Id | None = Field(default=None, description="the reporting agent (the assignee)")


class SendMessageRequest(Strict):
    """A direct, task-thread or broadcast message: Thronglets' ``to_agent_id`` + ``content``,
    seed 003's ``recipients`` + ``message_type``, or an A2A ``Message``."""

    sender_id: Id | None = Field(
        default=None,
        validation_alias=AliasChoices("sender_id", "from_agent_id", "from", "sender"),
        description="the sending agent (default: the operator)",
    )
    to: list[Id] | Id | None = Field(
        default=None,
        validation_alias=AliasChoices("to", "to_agent_id", "recipients", "recipient_id"),
    )
    task_id: Id | None = None
    broadcast: bool = Field(default=False, description="to every agent that is not offline")
    capability: Capability | None = Field(
        default=None, description="broadcast to the agents with this capability only"
    )
    content: Text | None = None
    message: Message | None = None
    message_type: MessageType = MessageType.TEXT
    message_id: Id | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_content_and_one_audience(self) -> SendMessageRequest:
        if (self.content is None) == (self.message is None):
            raise ValueError("give exactly one of content (text) or message (an A2A Message)")
        recipients = self.recipients
        if len(recipients) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients")
        wants_broadcast = self.broadcast or self.capability is not None
        if wants_broadcast and (recipients or self.task_id):
            raise ValueError("a broadcast names no recipients and no task")
        if not wants_broadcast and not recipients and self.task_id is None:
            raise ValueError("give recipients (to), a task_id, or broadcast: true")
        return self

    @property
    def recipients(self) -> list[str]:
        if self.to is None:
            return []
        return [self.to] if isinstance(self.to, str) else list(self.to)

    @property
    def is_broadcast(self) -> bool:
        return self.broadcast or self.capability is not None


class AckRequest(Strict):
    message_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=1_000
    )


class SetMemoryRequest(Strict):
    """``PUT /memory/{key}``: a JSON value, optionally compare-and-set, optionally an ACL."""

    value: NonNullJson
    agent_id: Id | None = Field(default=None, description="the writing agent (default: operator)")
    expected_version: int | None = Field(
        default=None, ge=0, description="write only if the key is at this version (0: absent)"
    )
    readers: Principals | None = Field(default=None, description="agent ids, or * for anyone")
    writers: Principals | None = Field(default=None, description="agent ids, or * for anyone")


KeyPrefix = Annotated[str, Field(max_length=256, pattern=r"^([A-Za-z0-9][A-Za-z0-9._:@-]*)?$")]


class SubscribeRequest(Strict):
    """Keys (``project.results``), prefixes (``project.``), or patterns (``project.*``)."""

    patterns: list[SubscriptionPattern] = Field(default_factory=list, max_length=100)
    keys: list[MemoryKey] = Field(default_factory=list, max_length=100)
    prefixes: list[
        Annotated[str, Field(max_length=256, pattern=r"^([A-Za-z0-9][A-Za-z0-9._:@-]*)?$")]
    ] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _something(self) -> SubscribeRequest:
        if not (self.patterns or self.keys or self.prefixes):
            raise ValueError("give keys, prefixes or patterns to subscribe to")
        return self

    def all_patterns(self) -> list[str]:
        return [*self.patterns, *self.keys, *(f"{prefix}*" for prefix in self.prefixes)]


class RegisterAppRequest(Strict):
    """Thronglets' app registration: every field but ``metadata`` is required."""

    name: AppName
    description: Annotated[str, Field(min_length=1, max_length=10_000)]
    scenario: Scenario
    mcp_endpoint: AnyHttpUrl = Field(description="the app's MCP endpoint (streamable HTTP)")
    health_check_url: AnyHttpUrl = Field(description="answers a GET below 400 while healthy")
    metadata: dict[str, Any] | None = None


class UpdateAppRequest(Strict):
    """``PUT /apps/{id}``: the fields to change; the others keep their values."""

    name: AppName | None = None
    description: Annotated[str, Field(min_length=1, max_length=10_000)] | None = None
    scenario: Scenario | None = None
    mcp_endpoint: AnyHttpUrl | None = None
    health_check_url: AnyHttpUrl | None = None
    metadata: dict[str, Any] | None = None


class ExecuteRequest(Strict):
    """Call one tool of an app through the hub's proxy."""

    tool_name: Annotated[str, Field(min_length=1, max_length=200)]
    arguments: dict[str, Any] = Field(default_factory=dict)
    agent_id: Id | None = Field(
        default=None, description="the calling agent: its own session with the app"
    )
    metadata: dict[str, Json] | None = Field(
        default=None, description="passed on to the app with the caller's context"
    )
