"""Every event type of every log, for readers that show them all (feeds, ``events tail``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from schemas.base import CommandRejected
from schemas.registry import (
    AgentDeregistered,
    AgentExpired,
    AgentHeartbeatRecorded,
    AgentRegistered,
    AgentRenewed,
    AgentStatusChanged,
)
from schemas.tasks import (
    TaskAssigned,
    TaskDeleted,
    TaskMarkedOverdue,
    TaskReleased,
    TaskStatusChanged,
    TaskSubmitted,
)

AnyEvent = Annotated[
    AgentRegistered
    | AgentRenewed
    | AgentHeartbeatRecorded
    | AgentStatusChanged
    | AgentExpired
    | AgentDeregistered
    | TaskSubmitted
    | TaskAssigned
    | TaskReleased
    | TaskStatusChanged
    | TaskMarkedOverdue
    | TaskDeleted
    | CommandRejected,
    Field(discriminator="type"),
]
ANY_EVENT = TypeAdapter(AnyEvent)


def subject_of(event: AnyEvent) -> str | None:
    """The id of the entity an event is about."""
    if isinstance(event, CommandRejected):
        return event.entity_id
    if isinstance(event, TaskSubmitted):
        return event.task.id
    return (
        getattr(event, "agent_id", None)
        if event.type.startswith("agent.")
        else getattr(event, "task_id", None)
    )
