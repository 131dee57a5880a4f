"""The A2A 1.0 data model in snake_case JSON: cards, messages, parts, artifacts, tasks.

Field names and shapes follow the A2A protocol's data model (the shapes Thronglets
serves), with size limits so that one bad payload cannot hurt the hub.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from schemas.base import Frozen
from schemas.limits import Json

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=10_000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2_048)]
Metadata = dict[str, Json]


class Role(StrEnum):
    USER = "user"
    AGENT = "agent"


class TaskState(StrEnum):
    """A2A task states, plus ``expired`` for a task whose TTL ran out."""

    SUBMITTED = "submitted"
    WORKING = "working"
    INPUT_REQUIRED = "input_required"
    AUTH_REQUIRED = "auth_required"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class FilePart(Frozen):
    file_with_uri: Url | None = None
    file_with_bytes: str | None = Field(default=None, description="base64-encoded content")
    media_type: str | None = None
    name: str | None = None


class DataPart(Frozen):
    data: dict[str, Any]


class Part(Frozen):
    """One piece of content: exactly one of text, file or data."""

    text: str | None = None
    file: FilePart | None = None
    data: DataPart | None = None
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Part:
        kinds = sum(x is not None for x in (self.text, self.file, self.data))
        if kinds != 1:
            raise ValueError("a part holds exactly one of text, file or data")
        return self


class Message(Frozen):
    message_id: str = Field(min_length=1, max_length=128)
    context_id: str | None = None
    task_id: str | None = None
    role: Role
    parts: list[Part] = Field(min_length=1, max_length=256)
    metadata: Metadata | None = None
    extensions: list[str] | None = None
    reference_task_ids: list[str] | None = None


class Artifact(Frozen):
    artifact_id: str = Field(min_length=1, max_length=128)
    name: str | None = None
    description: str | None = None
    parts: list[Part] = Field(min_length=1, max_length=256)
    metadata: Metadata | None = None
    extensions: list[str] | None = None


class TaskStatus(Frozen):
    state: TaskState
    message: Message | None = None
    timestamp: AwareDatetime | None = None


class Task(Frozen):
    id: str
    context_id: str
    status: TaskStatus
    artifacts: list[Artifact] = Field(default_factory=list)
    history: list[Message] = Field(default_factory=list)
    metadata: Metadata | None = None


class AgentInterface(Frozen):
    url: Url
    protocol_binding: str = Field(min_length=1, max_length=64)
    tenant: str | None = None


class AgentProvider(Frozen):
    url: Url
    organization: ShortText


class AgentExtension(Frozen):
    uri: Url
    description: str | None = None
    required: bool = False
    params: Metadata | None = None


class AgentCapabilities(Frozen):
    streaming: bool | None = None
    push_notifications: bool | None = None
    extensions: list[AgentExtension] | None = None
    state_transition_history: bool | None = None
    extended_agent_card: bool | None = None


class AgentSkill(Frozen):
    id: ShortText
    name: ShortText
    description: LongText = ""
    tags: list[Tag] = Field(default_factory=list, max_length=64)
    examples: list[LongText] | None = None
    input_modes: list[str] | None = None
    output_modes: list[str] | None = None
    security_requirements: list[Metadata] | None = None


class AgentCard(Frozen):
    """An agent's self-description. Name and version identify it across renewals."""

    name: ShortText
    description: LongText = ""
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    protocol_versions: list[str] = Field(default_factory=lambda: ["1.0"])
    supported_interfaces: list[AgentInterface] = Field(default_factory=list, max_length=32)
    provider: AgentProvider | None = None
    documentation_url: Url | None = None
    capabilities: AgentCapabilities = Field(default_factory=AgentCapabilities)
    security_schemes: Metadata | None = None
    security_requirements: list[Metadata] | None = None
    skills: list[AgentSkill] = Field(default_factory=list, max_length=256)
    default_input_modes: list[str] = Field(default_factory=lambda: ["text/plain"])
    default_output_modes: list[str] = Field(default_factory=lambda: ["text/plain"])
    signatures: list[Metadata] | None = None
    icon_url: Url | None = None


def as_message(content: Message | str | None, role: Role = Role.AGENT) -> Message | None:
    """A message from plain text (the seeds send strings), or the A2A ``Message`` given."""
    if content is None or isinstance(content, Message):
        return content
    return Message(message_id=str(uuid.uuid4()), role=role, parts=[Part(text=content)])
