"""Every event type of every log, for readers that show them all (feeds, ``events tail``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from schemas.apps import (
    AppCallCompleted,
    AppCallFailed,
    AppCallRequested,
    AppHealthChanged,
    AppRegistered,
    AppRemoved,
    AppToolsDiscovered,
    AppUpdated,
)
from schemas.base import CommandRejected
from schemas.memory import MemoryDeleted, MemoryUpdated
from schemas.messages import MessageDeleted, MessagesAcked, MessageSent
from schemas.registry import (
    AgentDeregistered,
    AgentExpired,
    AgentHeartbeatRecorded,
    AgentRegistered,
    AgentRenewed,
    AgentStatusChanged,
    AgentSubscriptionsChanged,
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
    | AgentSubscriptionsChanged
    | TaskSubmitted
    | TaskAssigned
    | TaskReleased
    | TaskStatusChanged
    | TaskMarkedOverdue
    | TaskDeleted
    | MessageSent
    | MessagesAcked
    | MessageDeleted
    | MemoryUpdated
    | MemoryDeleted
    | AppRegistered
    | AppUpdated
    | AppHealthChanged
    | AppToolsDiscovered
    | AppRemoved
    | AppCallRequested
    | AppCallCompleted
    | AppCallFailed
    | CommandRejected,
    Field(discriminator="type"),
]
ANY_EVENT = TypeAdapter(AnyEvent)


def subject_of(event: AnyEvent) -> str | None:
    """The id of the entity an event is about."""
    if isinstance(event, CommandRejected):
        return event.entity_id
    match event:
        case TaskSubmitted():
            return event.task.id
        case MessageSent() | MessageDeleted():
            return event.sender_id
        case MemoryUpdated() | MemoryDeleted():
            return event.key
        case MessagesAcked():
            return event.agent_id
        case AppRegistered() | AppUpdated():
            return event.app.app_id
        case (
            AppHealthChanged()
            | AppToolsDiscovered()
            | AppRemoved()
            | AppCallRequested()
            | AppCallCompleted()
            | AppCallFailed()
        ):
            return event.app_id
    return (
        getattr(event, "agent_id", None)
        if event.type.startswith("agent.")
        else getattr(event, "task_id", None)
    )
