"""What the hub delivers to one agent: its inbox, keyed by agent id."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from schemas.base import Frozen
from schemas.memory import MemoryItem
from schemas.messages import MessageRecord
from schemas.tasks import TaskAssignment, TaskRecord


class Delivery(Frozen):
    """An item for one agent. ``delivery_id`` is stable across redeliveries: dedupe on it."""

    delivery_id: str
    agent_id: str
    occurred_at: AwareDatetime
    event_id: str = Field(description="the event this delivery was made from")


class TaskAssignedDelivery(Delivery):
    """A task to work on. Report progress with ``task.update_status`` commands."""

    type: Literal["inbox.task_assigned"] = "inbox.task_assigned"
    task: TaskRecord
    assignment: TaskAssignment


class TaskUpdatedDelivery(Delivery):
    """A task this agent asked for or holds changed: finished, cancelled, taken away."""

    type: Literal["inbox.task_updated"] = "inbox.task_updated"
    role: Literal["requester", "assignee", "previous_assignee"]
    task: TaskRecord


class MessageDelivery(Delivery):
    """A message for this agent. ``record.message_id`` is stable too: show it once."""

    type: Literal["inbox.message"] = "inbox.message"
    record: MessageRecord


class MemoryUpdatedDelivery(Delivery):
    """A memory key this agent subscribed to was written (``item``) or deleted."""

    type: Literal["inbox.memory_updated"] = "inbox.memory_updated"
    key: str
    version: int
    deleted: bool = False
    updated_by: str | None = None
    item: MemoryItem | None = None


InboxItem = Annotated[
    TaskAssignedDelivery | TaskUpdatedDelivery | MessageDelivery | MemoryUpdatedDelivery,
    Field(discriminator="type"),
]
INBOX_ITEM = TypeAdapter(InboxItem)
