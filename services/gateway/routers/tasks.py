"""``/tasks``: create and delegate, report status, cancel, assign, complete, query."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, Field

from core.queries import TaskFilter
from schemas.a2a import Artifact, Message
from schemas.events import ANY_EVENT
from schemas.requests import CreateTask, Id, StatusUpdate, Strict
from schemas.tasks import (
    Priority,
    Reason,
    StateInput,
    TaskAssignment,
    TaskRecord,
)
from services.gateway.deps import HubDep, PageSize, PageToken, PathId
from services.gateway.errors import COMMAND_ERRORS
from services.usecases import tasks

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=COMMAND_ERRORS)

TaskId = PathId
HistoryLength = Annotated[
    int | None, Query(ge=0, le=10_000, description="keep only the last N history messages")
]


class Completion(Strict):
    result: Any = None
    message: Message | Annotated[str, Field(max_length=100_000)] | None = None
    artifacts: list[Artifact] = Field(default_factory=list, max_length=64)
    agent_id: Id | None = None


class Cancellation(Strict):
    reason: Reason | None = None
    agent_id: Id | None = Field(default=None, description="the requester or assignee cancelling")


class Assignment(Strict):
    agent_id: Id


class TaskList(BaseModel):
    """A2A's ``ListTasksResponse``."""

    tasks: list[TaskRecord]
    next_page_token: str | None = None
    page_size: int
    total_size: int


class Deleted(BaseModel):
    status: str = "deleted"
    task_id: str


@router.post("", response_model=TaskRecord, status_code=201, response_model_exclude_none=True)
async def create_task(hub: HubDep, body: CreateTask) -> TaskRecord:
    """Create a task for an agent (``assignee_id``) or a capability (201); answers once
    decided. An id that exists already is a 409."""
    return await tasks.create_task(hub, body)


def _list(
    hub: HubDep,
    where: TaskFilter,
    page_size: int,
    page_token: str | None,
    history_length: int | None,
) -> TaskList:
    try:
        page = tasks.list_tasks(
            hub, where, page_size=page_size, page_token=page_token, history_length=history_length
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return TaskList(
        tasks=page.tasks,
        next_page_token=page.next_page_token,
        page_size=page.page_size,
        total_size=page.total_size,
    )


@router.get("", response_model=TaskList, response_model_exclude_none=True)
async def list_tasks(
    hub: HubDep,
    context_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[list[StateInput] | None, Query(description="one or more states")] = None,
    assignee: Annotated[str | None, Query(max_length=128)] = None,
    requester: Annotated[str | None, Query(max_length=128)] = None,
    capability: Annotated[str | None, Query(max_length=200)] = None,
    priority: Annotated[Priority | None, Query()] = None,
    pending: Annotated[bool | None, Query(description="submitted, not started")] = None,
    open: Annotated[bool | None, Query(description="not finished")] = None,
    overdue: Annotated[bool | None, Query(description="open and past due_at")] = None,
    page_size: PageSize = 50,
    page_token: PageToken = None,
    history_length: HistoryLength = None,
) -> TaskList:
    where = TaskFilter(
        context_id=context_id,
        states=frozenset(status or ()),
        assignee_id=assignee,
        requester_id=requester,
        capability=capability,
        priority=priority,
        pending=pending,
        open=open,
        overdue=overdue,
    )
    return _list(hub, where, page_size, page_token, history_length)


@router.get("/pending", response_model=TaskList, response_model_exclude_none=True)
async def pending_tasks(
    hub: HubDep, page_size: PageSize = 50, page_token: PageToken = None
) -> TaskList:
    """Seed 003's pending view: submitted tasks nobody started yet."""
    return _list(hub, TaskFilter(pending=True), page_size, page_token, None)


@router.get("/overdue", response_model=TaskList, response_model_exclude_none=True)
async def overdue_tasks(
    hub: HubDep, page_size: PageSize = 50, page_token: PageToken = None
) -> TaskList:
    """Seed 003's overdue view: open tasks past their due time."""
    return _list(hub, TaskFilter(overdue=True), page_size, page_token, None)


@router.get("/agent/{agent_id}", response_model=TaskList, response_model_exclude_none=True)
async def agent_tasks(
    hub: HubDep, agent_id: TaskId, page_size: PageSize = 50, page_token: PageToken = None
) -> TaskList:
    """Seed 003's view of the tasks assigned to one agent."""
    return _list(hub, TaskFilter(assignee_id=agent_id), page_size, page_token, None)


@router.get("/{task_id}", response_model=TaskRecord, response_model_exclude_none=True)
async def get_task(
    hub: HubDep, task_id: TaskId, history_length: HistoryLength = None
) -> TaskRecord:
    return tasks.get_task(hub, task_id, history_length=history_length)


@router.get("/{task_id}/assignments", response_model=list[TaskAssignment])
async def assignments(hub: HubDep, task_id: TaskId) -> list[TaskAssignment]:
    """Every assignment the task had, oldest first."""
    return tasks.task_assignments(hub, task_id)


@router.get("/{task_id}/events")
async def task_events(hub: HubDep, task_id: TaskId) -> list[dict[str, Any]]:
    """The task's whole history from the log, rejected commands included."""
    return [
        ANY_EVENT.dump_python(e, mode="json", exclude_none=True)
        for e in tasks.task_events(hub, task_id)
    ]


@router.post("/{task_id}/status", response_model=TaskRecord, response_model_exclude_none=True)
async def update_status(hub: HubDep, task_id: TaskId, body: StatusUpdate) -> TaskRecord:
    """Report progress or an outcome; illegal transitions answer 409 with the reason."""
    return await tasks.update_status(
        hub,
        task_id,
        body.state,
        message=body.message,
        artifacts=body.artifacts,
        result=body.result,
        reason=body.reason,
        agent_id=body.agent_id,
    )


@router.post("/{task_id}/complete", response_model=TaskRecord, response_model_exclude_none=True)
async def complete_task(
    hub: HubDep, task_id: TaskId, body: Annotated[Completion | None, Body()] = None
) -> TaskRecord:
    done = body or Completion()
    return await tasks.complete_task(
        hub,
        task_id,
        result=done.result,
        message=done.message,
        artifacts=done.artifacts,
        agent_id=done.agent_id,
    )


@router.post("/{task_id}/cancel", response_model=TaskRecord, response_model_exclude_none=True)
async def cancel_task(
    hub: HubDep, task_id: TaskId, body: Annotated[Cancellation | None, Body()] = None
) -> TaskRecord:
    cancel = body or Cancellation()
    return await tasks.cancel_task(hub, task_id, reason=cancel.reason, agent_id=cancel.agent_id)


@router.post("/{task_id}/assign", response_model=TaskRecord, response_model_exclude_none=True)
async def assign_task(hub: HubDep, task_id: TaskId, body: Assignment) -> TaskRecord:
    """Hand the task to another agent (an operator's decision; the old assignee is told)."""
    return await tasks.assign_task(hub, task_id, body.agent_id)


@router.delete("/{task_id}", response_model=Deleted)
async def delete_task(hub: HubDep, task_id: TaskId) -> Deleted:
    """Remove the task from listings (cancelling it if open); its events stay in the log."""
    await tasks.delete_task(hub, task_id)
    return Deleted(task_id=task_id)
