"""Delegated tasks: the public record, the commands that change it, the events that record it."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, TypeAdapter

from schemas.a2a import Artifact, Message, ShortText, Task, TaskState
from schemas.base import CommandEnvelope, CommandRejected, EntityId, EventEnvelope, Frozen
from schemas.limits import Json

TERMINAL_STATES = frozenset(
    {
        TaskState.COMPLETED,
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.REJECTED,
        TaskState.EXPIRED,
    }
)
"""States a task never leaves."""


def is_terminal(state: TaskState) -> bool:
    """Whether a task in ``state`` is finished (it never changes again)."""
    return state in TERMINAL_STATES


# The seeds' vocabularies, accepted on input. Seed 001 (the WebSocket hub) uses upper case;
# seed 003 (the communication channel) lower case. "assigned" is ``submitted`` with an assignee.
SEED_STATES: dict[str, TaskState] = {
    "pending": TaskState.SUBMITTED,
    "assigned": TaskState.SUBMITTED,
    "in_progress": TaskState.WORKING,
    "timeout": TaskState.EXPIRED,
    "canceled": TaskState.CANCELLED,
    "input-required": TaskState.INPUT_REQUIRED,
    "auth-required": TaskState.AUTH_REQUIRED,
}


def normalize_state(value: Any) -> Any:
    """Map a seed's or A2A's spelling (``IN_PROGRESS``, ``TASK_STATE_WORKING``) to ours."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    lowered = lowered.removeprefix("task_state_")
    return SEED_STATES.get(lowered, lowered)


StateInput = Annotated[TaskState, BeforeValidator(normalize_state)]
"""A task state as a client may spell it."""


class Priority(IntEnum):
    """Seed 003's priorities: 1 (low) to 4 (urgent)."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    URGENT = 4


TaskTtl = Annotated[float, Field(gt=0, le=30 * 86_400)]
Retries = Annotated[int, Field(ge=0, le=100)]
Capability = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(max_length=2_000)]


class AssignmentReason(StrEnum):
    EXPLICIT = "explicit"  # named by the requester
    CAPABILITY = "capability"  # routed to an agent with the capability
    MANUAL = "manual"  # an operator's POST /tasks/{id}/assign
    REASSIGNED = "reassigned"  # the previous assignee went away


class AssignmentStatus(StrEnum):
    """Seed 003's assignment vocabulary, plus what can happen to an assignment here."""

    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    LOST = "lost"  # the agent went offline or deregistered
    REPLACED = "replaced"  # an operator assigned the task to someone else


class TaskAssignment(Frozen):
    agent_id: str
    attempt: int = Field(ge=1)
    reason: AssignmentReason
    status: AssignmentStatus = AssignmentStatus.ASSIGNED
    assigned_at: AwareDatetime
    ended_at: AwareDatetime | None = None


class TaskRecord(Task):
    """An A2A ``Task`` with what delegation adds: who asked, who works on it, until when."""

    title: str | None = None
    description: str | None = None
    priority: Priority = Priority.NORMAL
    requester_id: str | None = None
    assignee_id: str | None = None
    capability: str | None = None
    input: Json = None
    result: Json = None
    max_retries: int = 0
    retries: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    due_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    overdue: bool = False
    reason: str | None = Field(default=None, description="why the task is in its state")


# Commands: imperative, keyed by task_id on the tasks command topic.


class SubmitTask(CommandEnvelope):
    """Create a task; the worker assigns it (to ``assignee_id``, or by ``capability``)."""

    type: Literal["task.submit"] = "task.submit"
    task_id: EntityId
    context_id: EntityId | None = None
    title: ShortText | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    priority: Priority = Priority.NORMAL
    due_at: AwareDatetime | None = None
    ttl_seconds: TaskTtl | None = None
    input: Json = None
    initial_message: Message | None = None
    metadata: dict[str, Any] | None = None
    requester_id: EntityId | None = None
    assignee_id: EntityId | None = None
    capability: Capability | None = None
    max_retries: Retries | None = None


class AssignTask(CommandEnvelope):
    """An operator hands the task to ``agent_id`` (whoever had it loses it)."""

    type: Literal["task.assign"] = "task.assign"
    task_id: EntityId
    agent_id: EntityId


class RouteTask(CommandEnvelope):
    """The worker saw an agent that can take a waiting task: route it now."""

    type: Literal["task.route"] = "task.route"
    task_id: EntityId


class UpdateTaskStatus(CommandEnvelope):
    """Move the task to ``state``; ``agent_id``, when given, must be the assignee."""

    type: Literal["task.update_status"] = "task.update_status"
    task_id: EntityId
    state: StateInput
    message: Message | None = None
    artifacts: list[Artifact] = Field(default_factory=list, max_length=64)
    result: Json = None
    reason: Reason | None = None
    agent_id: EntityId | None = None


class CancelTask(CommandEnvelope):
    """Cancel an open task; ``agent_id``, when given, must be its requester or assignee."""

    type: Literal["task.cancel"] = "task.cancel"
    task_id: EntityId
    reason: Reason | None = None
    agent_id: EntityId | None = None


class DeleteTask(CommandEnvelope):
    """Remove a task from every listing (cancelling it if open). The log keeps its history."""

    type: Literal["task.delete"] = "task.delete"
    task_id: EntityId
    reason: Reason | None = None


class ReleaseTask(CommandEnvelope):
    """The worker saw the assignee go away: re-assign the task, or fail it when out of retries."""

    type: Literal["task.release"] = "task.release"
    task_id: EntityId
    agent_id: EntityId
    reason: Reason


class ExpireTask(CommandEnvelope):
    """The worker's timer: the task's TTL ran out."""

    type: Literal["task.expire"] = "task.expire"
    task_id: EntityId


class MarkTaskOverdue(CommandEnvelope):
    """The worker's timer: the task's due time passed and it is still open."""

    type: Literal["task.mark_overdue"] = "task.mark_overdue"
    task_id: EntityId


TaskCommand = Annotated[
    SubmitTask
    | AssignTask
    | RouteTask
    | UpdateTaskStatus
    | CancelTask
    | DeleteTask
    | ReleaseTask
    | ExpireTask
    | MarkTaskOverdue,
    Field(discriminator="type"),
]
TASK_COMMAND = TypeAdapter(TaskCommand)


# Events: past tense, keyed by task_id on the tasks event topic.


class TaskSubmitted(EventEnvelope):
    """A new task, and its first assignment when an agent could take it at once."""

    type: Literal["task.submitted"] = "task.submitted"
    task: TaskRecord
    assignment: TaskAssignment | None = None


class TaskAssigned(EventEnvelope):
    type: Literal["task.assigned"] = "task.assigned"
    task_id: str
    assignment: TaskAssignment


class TaskReleased(EventEnvelope):
    """The assignee went away; ``assignment`` is its successor (None: waiting for one)."""

    type: Literal["task.released"] = "task.released"
    task_id: str
    agent_id: str
    reason: str
    retries: int
    assignment: TaskAssignment | None = None


class TaskStatusChanged(EventEnvelope):
    type: Literal["task.status_changed"] = "task.status_changed"
    task_id: str
    state: TaskState
    previous: TaskState
    message: Message | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    result: Json = None
    reason: str | None = None
    agent_id: str | None = Field(default=None, description="who reported it, if an agent")


class TaskMarkedOverdue(EventEnvelope):
    type: Literal["task.marked_overdue"] = "task.marked_overdue"
    task_id: str
    due_at: AwareDatetime


class TaskDeleted(EventEnvelope):
    type: Literal["task.deleted"] = "task.deleted"
    task_id: str
    reason: str | None = None
    previous: TaskState


TaskEvent = Annotated[
    TaskSubmitted
    | TaskAssigned
    | TaskReleased
    | TaskStatusChanged
    | TaskMarkedOverdue
    | TaskDeleted
    | CommandRejected,
    Field(discriminator="type"),
]
TASK_EVENT = TypeAdapter(TaskEvent)


class TaskEntry(Frozen):
    """The task decider's state for one task id: the table's value.

    ``task`` is None before submission; ``deleted`` hides it from listings while the
    log keeps its history.
    """

    task: TaskRecord | None = None
    assignments: tuple[TaskAssignment, ...] = ()
    deleted: bool = False
    seq: int = 0
    recent_command_ids: tuple[str, ...] = ()


TASK_ENTRY = TypeAdapter(TaskEntry)
