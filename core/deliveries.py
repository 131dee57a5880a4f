"""Which agents hear about a task event, and what they get in their inbox."""

from __future__ import annotations

from schemas.base import CommandRejected
from schemas.inbox import InboxItem, TaskAssignedDelivery, TaskUpdatedDelivery
from schemas.tasks import (
    TaskAssigned,
    TaskAssignment,
    TaskDeleted,
    TaskEntry,
    TaskEvent,
    TaskMarkedOverdue,
    TaskRecord,
    TaskReleased,
    TaskStatusChanged,
    TaskSubmitted,
)


def deliveries_for(event: TaskEvent, before: TaskEntry, after: TaskEntry) -> list[InboxItem]:
    """The inbox items ``event`` causes, given the task's entry before and after it.

    A new assignee gets the task; the agent that lost it hears so; requester and assignee
    hear of every status change that they did not report themselves.
    """
    task = after.task
    if task is None or isinstance(event, CommandRejected):
        return []
    match event:
        case TaskSubmitted(assignment=TaskAssignment() as assignment):
            return [_assigned(event, task, assignment)]
        case TaskAssigned():
            items: list[InboxItem] = [_assigned(event, task, event.assignment)]
            previous = before.task.assignee_id if before.task else None
            if previous is not None and previous != event.assignment.agent_id:
                items.append(_updated(event, task, previous, "previous_assignee"))
            return items
        case TaskReleased(assignment=TaskAssignment() as assignment):
            return [_assigned(event, task, assignment)]
        case TaskStatusChanged() | TaskDeleted() | TaskMarkedOverdue():
            reporter = event.agent_id if isinstance(event, TaskStatusChanged) else None
            items = []
            if task.assignee_id is not None and task.assignee_id != reporter:
                items.append(_updated(event, task, task.assignee_id, "assignee"))
            requester = task.requester_id
            if requester is not None and requester not in (reporter, task.assignee_id):
                items.append(_updated(event, task, requester, "requester"))
            return items
    return []


def _assigned(
    event: TaskEvent, task: TaskRecord, assignment: TaskAssignment
) -> TaskAssignedDelivery:
    return TaskAssignedDelivery(
        delivery_id=f"{event.event_id}:{assignment.agent_id}",
        agent_id=assignment.agent_id,
        occurred_at=event.occurred_at,
        event_id=event.event_id,
        task=task,
        assignment=assignment,
    )


def _updated(event: TaskEvent, task: TaskRecord, agent_id: str, role: str) -> TaskUpdatedDelivery:
    return TaskUpdatedDelivery.model_validate(
        {
            "delivery_id": f"{event.event_id}:{agent_id}",
            "agent_id": agent_id,
            "occurred_at": event.occurred_at,
            "event_id": event.event_id,
            "role": role,
            "task": task,
        }
    )
