"""The timers' index of open tasks: deadlines come due once, indexes follow the task."""

from __future__ import annotations

from datetime import timedelta

from core.tasks import decide, fold
from schemas.a2a import TaskState
from schemas.tasks import AssignTask, SubmitTask, TaskCommand, TaskEntry, UpdateTaskStatus
from streams.open_tasks import OpenTasks
from tests.core.test_tasks import POLICY, T0, FakeRoster, env


def entry_after(*commands: TaskCommand) -> TaskEntry:
    entry = fold([])
    for command in commands:
        entry = fold(decide(command, entry, T0, FakeRoster(), POLICY), entry)
    return entry


def test_deadlines_come_due_once_and_only_for_the_current_version() -> None:
    index = OpenTasks()
    submit = SubmitTask(
        **env("s"), task_id="t1", ttl_seconds=10, due_at=T0 + timedelta(seconds=5), capability="x"
    )
    entry = entry_after(submit)
    index.track("t1", entry)
    assert index.waiting == {"x": {"t1"}}
    assert list(index.due(T0 + timedelta(seconds=4))) == []
    assert list(index.due(T0 + timedelta(seconds=6))) == [("overdue", "t1")]
    assert list(index.due(T0 + timedelta(seconds=6))) == []
    assert list(index.due(T0 + timedelta(seconds=11))) == [("expire", "t1")]


def test_a_task_moves_between_indexes_and_leaves_when_finished() -> None:
    index = OpenTasks()
    submit = SubmitTask(**env("s"), task_id="t1", capability="x")
    assigned = entry_after(submit, AssignTask(**env("a"), task_id="t1", agent_id="a"))
    index.track("t1", assigned)
    assert index.by_assignee == {"a": {"t1"}} and not index.waiting
    done = entry_after(
        submit,
        AssignTask(**env("a"), task_id="t1", agent_id="a"),
        UpdateTaskStatus(**env("c"), task_id="t1", state=TaskState.COMPLETED),
    )
    index.track("t1", done)
    assert len(index) == 0 and not index.by_assignee
    assert list(index.due(T0 + timedelta(days=1))) == []
