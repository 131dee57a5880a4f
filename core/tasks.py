"""The task decider: submit and route, assign, report status, cancel, delete, expire, re-assign.

Longer than the others on purpose: the task state machine (its commands, transitions,
retries, timers and their refusals) is one set of rules, read top to bottom.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from core.envelopes import envelope, rejection, remember
from schemas.a2a import Message, TaskState, TaskStatus
from schemas.base import CommandRejected, RejectionCode
from schemas.registry import AgentStatus
from schemas.tasks import (
    AssignmentReason,
    AssignmentStatus,
    AssignTask,
    CancelTask,
    DeleteTask,
    ExpireTask,
    MarkTaskOverdue,
    ReleaseTask,
    RouteTask,
    SubmitTask,
    TaskAssigned,
    TaskAssignment,
    TaskCommand,
    TaskDeleted,
    TaskEntry,
    TaskEvent,
    TaskMarkedOverdue,
    TaskRecord,
    TaskReleased,
    TaskStatusChanged,
    TaskSubmitted,
    UpdateTaskStatus,
    is_terminal,
)

S = TaskState
HISTORY_LIMIT = 100
"""Messages a task keeps in its history (the log keeps them all)."""
ARTIFACT_LIMIT = 100
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.SUBMITTED: frozenset(
        {S.WORKING, S.INPUT_REQUIRED, S.AUTH_REQUIRED, S.COMPLETED, S.FAILED, S.REJECTED}
    ),
    S.WORKING: frozenset({S.WORKING, S.INPUT_REQUIRED, S.AUTH_REQUIRED, S.COMPLETED, S.FAILED}),
    S.INPUT_REQUIRED: frozenset(
        {S.WORKING, S.INPUT_REQUIRED, S.AUTH_REQUIRED, S.COMPLETED, S.FAILED}
    ),
    S.AUTH_REQUIRED: frozenset(
        {S.WORKING, S.INPUT_REQUIRED, S.AUTH_REQUIRED, S.COMPLETED, S.FAILED}
    ),
}
"""Which states an agent may report from each open state (cancel, expiry and re-assignment
are commands of their own). Terminal states have no way out."""

ASSIGNMENT_ENDS: dict[TaskState, AssignmentStatus] = {
    S.COMPLETED: AssignmentStatus.COMPLETED,
    S.FAILED: AssignmentStatus.FAILED,
    S.CANCELLED: AssignmentStatus.CANCELLED,
    S.REJECTED: AssignmentStatus.REJECTED,
    S.EXPIRED: AssignmentStatus.EXPIRED,
}


class Roster(Protocol):
    """What the decider may ask about agents (the worker's view of the network)."""

    def status_of(self, agent_id: str) -> AgentStatus | None: ...

    def least_loaded(self, capability: str, exclude: Collection[str] = ()) -> str | None: ...


@dataclass(frozen=True)
class TaskPolicy:
    """Tunables of the task decider."""

    default_ttl_seconds: float = 3_600.0
    default_max_retries: int = 3


def initial_state() -> TaskEntry:
    return TaskEntry()


def current_assignment(entry: TaskEntry) -> TaskAssignment | None:
    last = entry.assignments[-1] if entry.assignments else None
    return last if last is not None and last.ended_at is None else None


def decide(
    command: TaskCommand, entry: TaskEntry, now: datetime, roster: Roster, policy: TaskPolicy
) -> list[TaskEvent]:
    """The events ``command`` causes on ``entry`` at ``now`` (empty: nothing to do)."""
    if command.command_id in entry.recent_command_ids:
        return []
    if isinstance(command, SubmitTask):
        return _submit(command, entry, now, roster, policy)
    task = entry.task
    if task is None or entry.deleted:
        if isinstance(command, UpdateTaskStatus | CancelTask | DeleteTask | AssignTask):
            return [_reject(command, now, "not_found", f"task {command.task_id!r} does not exist")]
        return []  # a timer's command for a task that went away
    match command:
        case UpdateTaskStatus():
            return _update_status(command, entry, task, now)
        case CancelTask():
            return _cancel(command, entry, task, now)
        case DeleteTask():
            common = envelope(command.command_id, command.correlation_id, entry.seq, now)
            return [
                TaskDeleted(
                    **common, task_id=task.id, reason=command.reason, previous=task.status.state
                )
            ]
        case AssignTask():
            return _assign(command, entry, task, now)
        case RouteTask():
            return _route(command, entry, task, now, roster)
        case ReleaseTask():
            return _release(command, entry, task, now, roster)
        case ExpireTask():
            if is_terminal(task.status.state) or task.expires_at is None or now < task.expires_at:
                return []
            ttl = (task.expires_at - task.created_at).total_seconds()
            return [
                _status_changed(
                    command, entry, task, now, S.EXPIRED, reason=f"TTL of {ttl:g} s ran out"
                )
            ]
        case MarkTaskOverdue():
            if is_terminal(task.status.state) or task.overdue or task.due_at is None:
                return []
            if now < task.due_at:
                return []
            common = envelope(command.command_id, command.correlation_id, entry.seq, now)
            return [TaskMarkedOverdue(**common, task_id=task.id, due_at=task.due_at)]


def evolve(entry: TaskEntry, event: TaskEvent) -> TaskEntry:
    """The entry after ``event``; an event already applied (``seq`` not newer) changes nothing."""
    if isinstance(event, CommandRejected) or event.seq <= entry.seq:
        return entry
    task, assignments, deleted = entry.task, entry.assignments, entry.deleted
    at = event.occurred_at
    match event:
        case TaskSubmitted():
            task = event.task
            assignments = (event.assignment,) if event.assignment else ()
        case TaskAssigned() if task is not None:
            assignments = (*_end(assignments, AssignmentStatus.REPLACED, at), event.assignment)
            task = task.model_copy(
                update={
                    "assignee_id": event.assignment.agent_id,
                    "status": TaskStatus(state=S.SUBMITTED, timestamp=at),
                    "updated_at": at,
                    "reason": None,
                }
            )
        case TaskReleased() if task is not None:
            assignments = _end(assignments, AssignmentStatus.LOST, at)
            if event.assignment is not None:
                assignments = (*assignments, event.assignment)
            task = task.model_copy(
                update={
                    "assignee_id": event.assignment.agent_id if event.assignment else None,
                    "retries": event.retries,
                    "status": TaskStatus(state=S.SUBMITTED, timestamp=at),
                    "updated_at": at,
                    "reason": event.reason,
                }
            )
        case TaskStatusChanged() if task is not None:
            task, assignments = _apply_status(task, assignments, event)
        case TaskMarkedOverdue() if task is not None:
            task = task.model_copy(update={"overdue": True, "updated_at": at})
        case TaskDeleted() if task is not None:
            deleted = True
            if not is_terminal(task.status.state):
                reason = f"deleted: {event.reason}" if event.reason else "deleted"
                task = task.model_copy(
                    update={
                        "status": TaskStatus(state=S.CANCELLED, timestamp=at),
                        "updated_at": at,
                        "reason": reason,
                    }
                )
                assignments = _end(assignments, AssignmentStatus.CANCELLED, at)
    return TaskEntry(
        task=task,
        assignments=assignments,
        deleted=deleted,
        seq=event.seq,
        recent_command_ids=remember(entry.recent_command_ids, event.command_id),
    )


def fold(events: Iterable[TaskEvent], entry: TaskEntry | None = None) -> TaskEntry:
    result = entry if entry is not None else initial_state()
    for event in events:
        result = evolve(result, event)
    return result


def timer_command_id(kind: str, entry: TaskEntry) -> str:
    """One id per task version: a timer may ask twice, the decider acts once."""
    task_id = entry.task.id if entry.task else "?"
    return f"{kind}:{task_id}:{entry.seq}"


def needs_release(entry: TaskEntry, roster: Roster) -> str | None:
    """The assignee to take an open task from, if it went away; else None.

    A task routed by capability leaves an agent that is offline or gone. A task pinned to
    one agent, with no capability to re-route by, waits for that agent while it is only
    offline (its inbox keeps the delivery); the TTL bounds the wait.
    """
    task = entry.task
    if task is None or entry.deleted or is_terminal(task.status.state):
        return None
    assignee = task.assignee_id
    if assignee is None:
        return None
    status = roster.status_of(assignee)
    if status is None or (status is AgentStatus.OFFLINE and task.capability is not None):
        return assignee
    return None


def is_waiting(entry: TaskEntry) -> bool:
    """Submitted for a capability, with nobody assigned yet."""
    task = entry.task
    return (
        task is not None
        and not entry.deleted
        and task.status.state is S.SUBMITTED
        and task.assignee_id is None
        and task.capability is not None
    )


# deciding, command by command


def _submit(
    command: SubmitTask, entry: TaskEntry, now: datetime, roster: Roster, policy: TaskPolicy
) -> list[TaskEvent]:
    if entry.task is not None:
        return [_reject(command, now, "conflict", f"task {command.task_id!r} exists already")]
    if command.due_at is not None and command.due_at <= now:
        return [_reject(command, now, "invalid", "due_at must be in the future")]
    ttl = command.ttl_seconds or policy.default_ttl_seconds
    context_id = command.context_id or command.task_id
    capability = command.capability.lower() if command.capability else None
    history = []
    if command.initial_message is not None:
        history.append(
            command.initial_message.model_copy(
                update={"task_id": command.task_id, "context_id": context_id}
            )
        )
    assignment = None
    if command.assignee_id is not None:
        assignment = _assignment(command.assignee_id, 1, AssignmentReason.EXPLICIT, now)
    elif capability is not None:
        chosen = roster.least_loaded(capability)
        if chosen is not None:
            assignment = _assignment(chosen, 1, AssignmentReason.CAPABILITY, now)
    task = TaskRecord(
        id=command.task_id,
        context_id=context_id,
        status=TaskStatus(state=S.SUBMITTED, timestamp=now),
        history=history,
        metadata=command.metadata,
        title=command.title,
        description=command.description,
        priority=command.priority,
        requester_id=command.requester_id,
        assignee_id=assignment.agent_id if assignment else None,
        capability=capability,
        input=command.input,
        max_retries=(
            command.max_retries if command.max_retries is not None else policy.default_max_retries
        ),
        created_at=now,
        updated_at=now,
        due_at=command.due_at,
        expires_at=now + timedelta(seconds=ttl),
    )
    common = envelope(command.command_id, command.correlation_id, entry.seq, now)
    return [TaskSubmitted(**common, task=task, assignment=assignment)]


def _update_status(
    command: UpdateTaskStatus, entry: TaskEntry, task: TaskRecord, now: datetime
) -> list[TaskEvent]:
    current, wanted = task.status.state, command.state
    if is_terminal(current):
        return [_reject(command, now, "conflict", _finished(task))]
    if wanted is S.EXPIRED:
        return [_reject(command, now, "invalid", "expired is decided by the hub when a TTL ends")]
    if wanted is S.CANCELLED:
        return _cancel(command, entry, task, now)
    if wanted is S.SUBMITTED:
        reason = "a task goes back to submitted only when it is re-assigned"
        return [_reject(command, now, "conflict", reason)]
    if command.agent_id is not None and command.agent_id != task.assignee_id:
        holder = f"assigned to {task.assignee_id!r}" if task.assignee_id else "not assigned"
        reason = f"agent {command.agent_id!r} may not report on task {task.id!r}: it is {holder}"
        return [_reject(command, now, "forbidden", reason)]
    if wanted not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current]))
        reason = f"task {task.id!r} cannot go from {current} to {wanted} (allowed: {allowed})"
        return [_reject(command, now, "conflict", reason)]
    return [
        _status_changed(
            command,
            entry,
            task,
            now,
            wanted,
            reason=command.reason,
            message=command.message,
            artifacts=command.artifacts,
            result=command.result,
            agent_id=command.agent_id,
        )
    ]


def _cancel(
    command: CancelTask | UpdateTaskStatus, entry: TaskEntry, task: TaskRecord, now: datetime
) -> list[TaskEvent]:
    if is_terminal(task.status.state):
        return [_reject(command, now, "conflict", _finished(task))]
    actor = command.agent_id
    if actor is not None and actor not in (task.requester_id, task.assignee_id):
        reason = f"agent {actor!r} may not cancel task {task.id!r}: only its requester or assignee"
        return [_reject(command, now, "forbidden", reason)]
    return [
        _status_changed(
            command, entry, task, now, S.CANCELLED, reason=command.reason, agent_id=actor
        )
    ]


def _assign(
    command: AssignTask, entry: TaskEntry, task: TaskRecord, now: datetime
) -> list[TaskEvent]:
    if is_terminal(task.status.state):
        return [_reject(command, now, "conflict", _finished(task))]
    if task.assignee_id == command.agent_id:
        reason = f"task {task.id!r} is assigned to {command.agent_id!r} already"
        return [_reject(command, now, "conflict", reason)]
    attempt = len(entry.assignments) + 1
    common = envelope(command.command_id, command.correlation_id, entry.seq, now)
    assignment = _assignment(command.agent_id, attempt, AssignmentReason.MANUAL, now)
    return [TaskAssigned(**common, task_id=task.id, assignment=assignment)]


def _route(
    command: RouteTask, entry: TaskEntry, task: TaskRecord, now: datetime, roster: Roster
) -> list[TaskEvent]:
    if not is_waiting(entry) or task.capability is None:
        return []
    chosen = roster.least_loaded(task.capability)
    if chosen is None:
        return []
    reason = AssignmentReason.REASSIGNED if task.retries else AssignmentReason.CAPABILITY
    assignment = _assignment(chosen, len(entry.assignments) + 1, reason, now)
    common = envelope(command.command_id, command.correlation_id, entry.seq, now)
    return [TaskAssigned(**common, task_id=task.id, assignment=assignment)]


def _release(
    command: ReleaseTask, entry: TaskEntry, task: TaskRecord, now: datetime, roster: Roster
) -> list[TaskEvent]:
    if needs_release(entry, roster) != command.agent_id:
        return []  # the agent came back, or the task moved on, since the timer asked
    retries = task.retries + 1
    lost = f"assignee {command.agent_id} {command.reason}"
    successor = None
    if task.capability is not None and retries <= task.max_retries:
        chosen = roster.least_loaded(task.capability, exclude={command.agent_id})
        if chosen is not None:
            successor = _assignment(
                chosen, len(entry.assignments) + 1, AssignmentReason.REASSIGNED, now
            )
    common = envelope(command.command_id, command.correlation_id, entry.seq, now)
    released = TaskReleased(
        **common,
        task_id=task.id,
        agent_id=command.agent_id,
        reason=lost,
        retries=retries,
        assignment=successor,
    )
    if task.capability is not None and retries <= task.max_retries:
        return [released]
    if task.capability is None:
        why = f"{lost}, and the task names no capability to re-route it by"
    else:
        why = f"{lost}, and it was re-assigned {task.max_retries} times already (max_retries)"
    after = evolve(entry, released).task or task
    failed = _status_changed(command, entry, after, now, S.FAILED, reason=why, index=1)
    return [released, failed]


# helpers


def _status_changed(
    command: TaskCommand,
    entry: TaskEntry,
    task: TaskRecord,
    now: datetime,
    state: TaskState,
    *,
    reason: str | None = None,
    message: Message | None = None,
    artifacts: Iterable[object] = (),
    result: object = None,
    agent_id: str | None = None,
    index: int = 0,
) -> TaskStatusChanged:
    common = envelope(command.command_id, command.correlation_id, entry.seq, now, index)
    if message is not None:
        message = message.model_copy(update={"task_id": task.id, "context_id": task.context_id})
    return TaskStatusChanged(
        **common,
        task_id=task.id,
        state=state,
        previous=task.status.state,
        message=message,
        artifacts=list(artifacts),
        result=result,
        reason=reason,
        agent_id=agent_id,
    )


def _apply_status(
    task: TaskRecord, assignments: tuple[TaskAssignment, ...], event: TaskStatusChanged
) -> tuple[TaskRecord, tuple[TaskAssignment, ...]]:
    at = event.occurred_at
    current = assignments[-1] if assignments and assignments[-1].ended_at is None else None
    history = task.history
    if event.message is not None:
        history = [*history, event.message][-HISTORY_LIMIT:]
    artifacts = [*task.artifacts, *event.artifacts][-ARTIFACT_LIMIT:]
    update: dict[str, object] = {
        "status": TaskStatus(state=event.state, message=event.message, timestamp=at),
        "history": history,
        "artifacts": artifacts,
        "updated_at": at,
        "reason": event.reason,
    }
    if event.result is not None:
        update["result"] = event.result
    if event.state in ASSIGNMENT_ENDS:
        assignments = _end(assignments, ASSIGNMENT_ENDS[event.state], at)
    elif current is not None and current.status is AssignmentStatus.ASSIGNED:
        accepted = current.model_copy(update={"status": AssignmentStatus.ACCEPTED})
        assignments = (*assignments[:-1], accepted)
    return task.model_copy(update=update), assignments


def _end(
    assignments: tuple[TaskAssignment, ...], status: AssignmentStatus, at: datetime
) -> tuple[TaskAssignment, ...]:
    """End the current assignment, if there is one."""
    if not assignments or assignments[-1].ended_at is not None:
        return assignments
    last = assignments[-1].model_copy(update={"status": status, "ended_at": at})
    return (*assignments[:-1], last)


def _assignment(
    agent_id: str, attempt: int, reason: AssignmentReason, now: datetime
) -> TaskAssignment:
    return TaskAssignment(agent_id=agent_id, attempt=attempt, reason=reason, assigned_at=now)


def _finished(task: TaskRecord) -> str:
    return f"task {task.id!r} is {task.status.state} already; a finished task never changes"


def _reject(
    command: TaskCommand, now: datetime, code: RejectionCode, reason: str
) -> CommandRejected:
    return rejection(
        command.command_id,
        command.correlation_id,
        command.type,
        command.task_id,
        now,
        code,
        reason,
    )
