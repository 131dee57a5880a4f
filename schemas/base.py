"""The frozen base model and the envelopes every command and event carries."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1

ENTITY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
EntityId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=ENTITY_ID_PATTERN)
]
"""An id that is safe as a Kafka key, a URL path segment and a log field."""


class Frozen(BaseModel):
    """Immutable, strict base: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CommandEnvelope(Frozen):
    """What every command carries besides its payload."""

    command_id: EntityId
    correlation_id: EntityId | None = None
    causation_id: EntityId | None = None
    issued_at: AwareDatetime
    issued_by: str | None = Field(default=None, max_length=256)
    schema_version: int = SCHEMA_VERSION


class EventEnvelope(Frozen):
    """What every event carries besides its payload.

    ``seq`` is the entity's version after this event: consumers drop any event whose
    ``seq`` they have already applied, so a re-published event is harmless.
    """

    event_id: str
    command_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    occurred_at: AwareDatetime
    schema_version: int = SCHEMA_VERSION
    seq: int = Field(default=0, ge=0)


RejectionCode = Literal["invalid", "not_found", "conflict", "forbidden"]


class CommandRejected(EventEnvelope):
    """A command that was not applied, and why. State never changes because of it."""

    type: Literal["command.rejected"] = "command.rejected"
    entity_id: str | None = None
    command_type: str | None = None
    code: RejectionCode
    reason: str
    current_version: int | None = Field(
        default=None, description="compare-and-set conflicts: the entity's version now"
    )
