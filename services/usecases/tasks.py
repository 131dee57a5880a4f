"""Task operations: the one place REST, CLI and MCP all call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.queries import TaskFilter, page_of, select_tasks
from kolony.commands import chosen, new_envelope
from schemas.a2a import Artifact, Message, Role, TaskState, as_message
from schemas.requests import CreateTask
from schemas.tasks import (
    AssignTask,
    CancelTask,
    DeleteTask,
    TaskAssignment,
    TaskEvent,
    TaskRecord,
    UpdateTaskStatus,
)
from services.hub import Hub
from services.usecases.registry import get_agent, require_caught_up


class UnknownTask(LookupError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} does not exist")
        self.task_id = task_id


@dataclass(frozen=True)
class TaskPage:
    tasks: list[TaskRecord]
    next_page_token: str | None
    page_size: int
    total_size: int


TASK_IDS = uuid.UUID("6b6f6c6f-6e79-5461-736b-000000000001")  # task ids from command ids


async def create_task(hub: Hub, new: CreateTask, *, issued_by: str = "gateway") -> TaskRecord:
    """Submit a task (``POST /tasks``' body, also ``task:create``'s and the MCP tools'); it comes
    back as the decider recorded it (assigned if someone could)."""
    for agent_id in (new.requester_id, new.assignee_id):
        if agent_id is not None:
            get_agent(hub, agent_id)  # unknown agents are a 404, before anything is published
    # A retried request (the same chosen command id) names the same task, never a second one.
    retried = chosen()
    task_id = new.id or str(uuid.uuid5(TASK_IDS, retried) if retried else uuid.uuid4())
    command = new.command(
        new_envelope(issued_by), task_id, as_message(new.initial_message, Role.USER)
    )
    await hub.execute(command)
    return _require(hub, task_id)


async def update_status(
    hub: Hub,
    task_id: str,
    state: TaskState,
    *,
    message: Message | str | None = None,
    artifacts: list[Artifact] | None = None,
    result: Any = None,
    reason: str | None = None,
    agent_id: str | None = None,
    issued_by: str = "gateway",
) -> TaskRecord:
    command = UpdateTaskStatus(
        **new_envelope(issued_by),
        task_id=task_id,
        state=state,
        message=as_message(message),
        artifacts=artifacts or [],
        result=result,
        reason=reason,
        agent_id=agent_id,
    )
    await hub.execute(command)
    return _require(hub, task_id)


async def complete_task(
    hub: Hub,
    task_id: str,
    *,
    result: Any = None,
    message: Message | str | None = None,
    artifacts: list[Artifact] | None = None,
    agent_id: str | None = None,
    issued_by: str = "gateway",
) -> TaskRecord:
    return await update_status(
        hub,
        task_id,
        TaskState.COMPLETED,
        message=message,
        artifacts=artifacts,
        result=result,
        agent_id=agent_id,
        issued_by=issued_by,
    )


async def cancel_task(
    hub: Hub,
    task_id: str,
    *,
    reason: str | None = None,
    agent_id: str | None = None,
    issued_by: str = "gateway",
) -> TaskRecord:
    command = CancelTask(
        **new_envelope(issued_by), task_id=task_id, reason=reason, agent_id=agent_id
    )
    await hub.execute(command)
    return _require(hub, task_id)


async def assign_task(
    hub: Hub, task_id: str, agent_id: str, *, issued_by: str = "gateway"
) -> TaskRecord:
    get_agent(hub, agent_id)
    command = AssignTask(**new_envelope(issued_by), task_id=task_id, agent_id=agent_id)
    await hub.execute(command)
    return _require(hub, task_id)


async def delete_task(
    hub: Hub, task_id: str, *, reason: str | None = None, issued_by: str = "gateway"
) -> None:
    command = DeleteTask(**new_envelope(issued_by), task_id=task_id, reason=reason)
    await hub.execute(command)


def get_task(hub: Hub, task_id: str, *, history_length: int | None = None) -> TaskRecord:
    require_caught_up(hub)
    return with_history(_require(hub, task_id), history_length)


def list_tasks(
    hub: Hub,
    where: TaskFilter,
    *,
    page_size: int = 50,
    page_token: str | None = None,
    history_length: int | None = None,
) -> TaskPage:
    """Matching tasks, newest first, one page at a time (:class:`ValueError`: bad token)."""
    require_caught_up(hub)
    chosen = select_tasks(hub.board.tasks(), where, datetime.now(UTC))
    page, next_token = page_of(chosen, page_size, page_token)
    return TaskPage(
        tasks=[with_history(t, history_length) for t in page],
        next_page_token=next_token,
        page_size=page_size,
        total_size=len(chosen),
    )


def task_assignments(hub: Hub, task_id: str) -> list[TaskAssignment]:
    require_caught_up(hub)
    entry = hub.board.entry(task_id)
    if entry is None or entry.deleted:
        raise UnknownTask(task_id)
    return list(entry.assignments)


def task_events(hub: Hub, task_id: str) -> list[TaskEvent]:
    """Everything the log says about the task, deleted ones included."""
    require_caught_up(hub)
    if hub.board.entry(task_id) is None:
        raise UnknownTask(task_id)
    return hub.board.events(task_id)


def with_history(task: TaskRecord, history_length: int | None) -> TaskRecord:
    """A2A's ``history_length``: keep only the last N messages (0: none)."""
    if history_length is None or len(task.history) <= history_length:
        return task
    kept = task.history[-history_length:] if history_length else []
    return task.model_copy(update={"history": kept})


def _require(hub: Hub, task_id: str) -> TaskRecord:
    task = hub.board.get(task_id)
    if task is None:
        raise UnknownTask(task_id)
    return task
