"""The task decider: given / when / then, and a hypothesis state machine over random commands."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from core.deliveries import deliveries_for
from core.tasks import (
    TaskPolicy,
    current_assignment,
    decide,
    evolve,
    fold,
    initial_state,
    is_terminal,
    needs_release,
)
from schemas.a2a import Message, Part, Role, TaskState
from schemas.base import CommandRejected
from schemas.registry import AgentStatus
from schemas.tasks import (
    TERMINAL_STATES,
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
    TaskCommand,
    TaskEntry,
    TaskEvent,
    TaskReleased,
    TaskStatusChanged,
    TaskSubmitted,
    UpdateTaskStatus,
    normalize_state,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = TaskPolicy(default_ttl_seconds=600, default_max_retries=2)
TASK = "t1"


class FakeRoster:
    """Agents with a status, a capability each, and a load the test sets."""

    def __init__(self, agents: dict[str, tuple[AgentStatus, str]] | None = None) -> None:
        self.agents = dict(agents or {})
        self.load: dict[str, int] = {}

    def status_of(self, agent_id: str) -> AgentStatus | None:
        found = self.agents.get(agent_id)
        return found[0] if found else None

    def least_loaded(self, capability: str, exclude: Collection[str] = ()) -> str | None:
        fit = sorted(
            (self.load.get(a, 0), a)
            for a, (status, cap) in self.agents.items()
            if cap == capability and status is AgentStatus.ONLINE and a not in exclude
        )
        return fit[0][1] if fit else None


def env(command_id: str) -> dict[str, Any]:
    return {"command_id": command_id, "issued_at": T0}


def submit(command_id: str = "c-submit", **fields: Any) -> SubmitTask:
    return SubmitTask(**env(command_id), task_id=TASK, **fields)


def status(state: str, command_id: str = "c-status", **fields: Any) -> UpdateTaskStatus:
    return UpdateTaskStatus.model_validate(
        {**env(command_id), "task_id": TASK, "state": state, **fields}
    )


def run(
    commands: list[TaskCommand], roster: FakeRoster, at: datetime = T0
) -> tuple[TaskEntry, list[TaskEvent]]:
    entry, log = initial_state(), []
    for command in commands:
        events = decide(command, entry, at, roster, POLICY)
        entry = fold(events, entry)
        log.extend(events)
    return entry, log


# given / when / then


def test_a_task_for_a_capability_goes_to_the_least_loaded_online_agent() -> None:
    roster = FakeRoster(
        {
            "a": (AgentStatus.ONLINE, "summarize"),
            "b": (AgentStatus.ONLINE, "summarize"),
            "c": (AgentStatus.BUSY, "summarize"),
        }
    )
    roster.load = {"a": 3, "b": 1}
    entry, [event] = run([submit(capability="Summarize")], roster)
    assert isinstance(event, TaskSubmitted)
    assert event.assignment is not None
    assert event.assignment.agent_id == "b"
    assert event.assignment.reason is AssignmentReason.CAPABILITY
    assert entry.task is not None
    assert entry.task.assignee_id == "b"
    assert entry.task.capability == "summarize"


def test_with_nobody_online_the_task_waits_and_is_routed_when_someone_appears() -> None:
    roster = FakeRoster()
    entry, _ = run([submit(capability="x")], roster)
    assert entry.task is not None
    assert entry.task.assignee_id is None
    assert entry.task.status.state is TaskState.SUBMITTED
    assert decide(RouteTask(**env("r1"), task_id=TASK), entry, T0, roster, POLICY) == []
    roster.agents["a"] = (AgentStatus.ONLINE, "x")
    [routed] = decide(RouteTask(**env("r2"), task_id=TASK), entry, T0, roster, POLICY)
    assert isinstance(routed, TaskAssigned)
    assert routed.assignment.agent_id == "a"


def test_the_assignee_works_and_completes_and_the_requester_hears_of_it() -> None:
    roster = FakeRoster({"worker": (AgentStatus.ONLINE, "x")})
    result = {"summary": "short"}
    entry, log = run(
        [
            submit(capability="x", requester_id="boss"),
            status("working", "c2", agent_id="worker"),
            status("completed", "c3", agent_id="worker", result=result),
        ],
        roster,
    )
    assert entry.task is not None
    assert entry.task.status.state is TaskState.COMPLETED
    assert entry.task.result == result
    assert [a.status for a in entry.assignments] == [AssignmentStatus.COMPLETED]
    before = fold(log[:-1])
    [delivery] = deliveries_for(log[-1], before, entry)
    assert delivery.agent_id == "boss"
    assert delivery.type == "inbox.task_updated"


@pytest.mark.parametrize(
    ("spelling", "state"),
    [
        ("IN_PROGRESS", TaskState.WORKING),
        ("in_progress", TaskState.WORKING),
        ("PENDING", TaskState.SUBMITTED),
        ("assigned", TaskState.SUBMITTED),
        ("COMPLETED", TaskState.COMPLETED),
        ("TIMEOUT", TaskState.EXPIRED),
        ("TASK_STATE_INPUT_REQUIRED", TaskState.INPUT_REQUIRED),
        ("input-required", TaskState.INPUT_REQUIRED),
    ],
)
def test_the_seeds_vocabularies_are_accepted(spelling: str, state: TaskState) -> None:
    assert TaskState(normalize_state(spelling)) is state
    assert status(spelling).state is state


@pytest.mark.parametrize(
    ("commands", "code", "words"),
    [
        ([submit(), submit("c2")], "conflict", "exists already"),
        ([status("working")], "not_found", "does not exist"),
        ([submit(), status("completed", "c2"), status("working", "c3")], "conflict", "never"),
        ([submit(), status("expired", "c2")], "invalid", "TTL"),
        ([submit(), status("pending", "c2")], "conflict", "re-assigned"),
        ([submit(assignee_id="a"), status("working", "c2", agent_id="b")], "forbidden", "'b'"),
        ([submit(requester_id="r"), CancelTask(**env("c2"), task_id=TASK, agent_id="x")],
         "forbidden", "requester or assignee"),
        ([submit(assignee_id="a"), AssignTask(**env("c2"), task_id=TASK, agent_id="a")],
         "conflict", "already"),
        ([submit(), DeleteTask(**env("c2"), task_id=TASK), status("working", "c3")],
         "not_found", "does not exist"),
        ([submit(due_at=T0 - timedelta(seconds=1))], "invalid", "future"),
    ],
)  # fmt: skip
def test_illegal_commands_are_rejected_with_a_reason(
    commands: list[TaskCommand], code: str, words: str
) -> None:
    entry, log = run(commands, FakeRoster())
    rejection = log[-1]
    assert isinstance(rejection, CommandRejected)
    assert rejection.code == code
    assert words in rejection.reason
    assert fold(log[:-1]) == entry


def test_a_lost_assignee_is_replaced_then_the_task_fails_when_out_of_retries() -> None:
    roster = FakeRoster({"a": (AgentStatus.ONLINE, "x"), "b": (AgentStatus.ONLINE, "x")})
    roster.load = {"b": 5}
    entry, _ = run([submit(capability="x", max_retries=1)], roster)
    assert entry.task is not None
    assert entry.task.assignee_id == "a"
    roster.agents["a"] = (AgentStatus.OFFLINE, "x")
    assert needs_release(entry, roster) == "a"
    release = ReleaseTask(**env("rel1"), task_id=TASK, agent_id="a", reason="went offline")
    [released] = decide(release, entry, T0, roster, POLICY)
    assert isinstance(released, TaskReleased)
    assert released.assignment is not None
    assert released.assignment.agent_id == "b"
    entry = evolve(entry, released)
    assert entry.task is not None
    assert entry.task.retries == 1
    assert [a.status for a in entry.assignments] == [
        AssignmentStatus.LOST,
        AssignmentStatus.ASSIGNED,
    ]
    roster.agents["b"] = (AgentStatus.OFFLINE, "x")
    release = ReleaseTask(**env("rel2"), task_id=TASK, agent_id="b", reason="went offline")
    events = decide(release, entry, T0, roster, POLICY)
    entry = fold(events, entry)
    assert entry.task is not None
    assert entry.task.status.state is TaskState.FAILED
    assert "max_retries" in (entry.task.reason or "")
    assert [e.seq for e in events] == [3, 4]


def test_a_pinned_task_waits_for_its_offline_agent_and_fails_if_it_deregisters() -> None:
    roster = FakeRoster({"a": (AgentStatus.OFFLINE, "x")})
    entry, _ = run([submit(assignee_id="a")], roster)
    assert needs_release(entry, roster) is None
    del roster.agents["a"]
    assert needs_release(entry, roster) == "a"
    release = ReleaseTask(**env("rel"), task_id=TASK, agent_id="a", reason="deregistered")
    entry = fold(decide(release, entry, T0, roster, POLICY), entry)
    assert entry.task is not None
    assert entry.task.status.state is TaskState.FAILED
    assert "no capability" in (entry.task.reason or "")


def test_a_release_that_raced_the_agents_return_does_nothing() -> None:
    roster = FakeRoster({"a": (AgentStatus.ONLINE, "x")})
    entry, _ = run([submit(capability="x")], roster)
    release = ReleaseTask(**env("rel"), task_id=TASK, agent_id="a", reason="went offline")
    assert decide(release, entry, T0, roster, POLICY) == []


def test_ttl_expiry_and_overdue_marking_happen_only_when_due() -> None:
    roster = FakeRoster()
    entry, _ = run([submit(ttl_seconds=10, due_at=T0 + timedelta(seconds=5))], roster)
    expire, overdue = (
        ExpireTask(**env("e"), task_id=TASK),
        MarkTaskOverdue(**env("o"), task_id=TASK),
    )
    assert decide(expire, entry, T0 + timedelta(seconds=9), roster, POLICY) == []
    assert decide(overdue, entry, T0 + timedelta(seconds=4), roster, POLICY) == []
    entry = fold(decide(overdue, entry, T0 + timedelta(seconds=5), roster, POLICY), entry)
    assert entry.task is not None
    assert entry.task.overdue
    entry = fold(decide(expire, entry, T0 + timedelta(seconds=10), roster, POLICY), entry)
    assert entry.task is not None
    assert entry.task.status.state is TaskState.EXPIRED
    assert entry.task.reason == "TTL of 10 s ran out"


def test_manual_assignment_replaces_the_assignee_and_tells_both() -> None:
    roster = FakeRoster()
    entry, _ = run([submit(assignee_id="a")], roster)
    [event] = decide(AssignTask(**env("m"), task_id=TASK, agent_id="b"), entry, T0, roster, POLICY)
    after = evolve(entry, event)
    assert after.task is not None
    assert after.task.assignee_id == "b"
    assert [a.status for a in after.assignments] == [
        AssignmentStatus.REPLACED,
        AssignmentStatus.ASSIGNED,
    ]
    told = {(d.agent_id, d.type) for d in deliveries_for(event, entry, after)}
    assert told == {("b", "inbox.task_assigned"), ("a", "inbox.task_updated")}


def test_deleting_an_open_task_cancels_it_and_hides_it() -> None:
    roster = FakeRoster()
    entry, _ = run([submit(assignee_id="a"), DeleteTask(**env("d"), task_id=TASK)], roster)
    assert entry.deleted
    assert entry.task is not None
    assert entry.task.status.state is TaskState.CANCELLED


def test_status_messages_join_the_history_with_the_task_ids() -> None:
    message = Message(message_id="m1", role=Role.AGENT, parts=[Part(text="halfway")])
    entry, _ = run(
        [submit(assignee_id="a"), status("working", "c2", message=message)], FakeRoster()
    )
    assert entry.task is not None
    [kept] = entry.task.history
    assert (kept.task_id, kept.context_id) == (TASK, TASK)
    assert entry.task.status.message == kept


# A state machine over random commands, agents coming and going, and time passing.

AGENTS = ["a", "b", "c"]
STATES = [s.value for s in TaskState] + ["IN_PROGRESS", "pending", "TIMEOUT"]


class TaskMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.roster = FakeRoster(dict.fromkeys(AGENTS, (AgentStatus.ONLINE, "x")))
        self.entry = initial_state()
        self.log: list[TaskEvent] = []
        self.applied: list[TaskCommand] = []
        self.now = T0
        self.counter = 0
        self.was_terminal: TaskState | None = None

    def _id(self) -> str:
        self.counter += 1
        return f"c{self.counter}"

    def _decide(self, command: TaskCommand) -> None:
        events = decide(command, self.entry, self.now, self.roster, POLICY)
        for event in events:
            if isinstance(event, CommandRejected):
                assert event.reason
                assert event.code in {"invalid", "not_found", "conflict", "forbidden"}
                assert evolve(self.entry, event) is self.entry
            self.entry = evolve(self.entry, event)
        self.log.extend(events)
        if any(not isinstance(e, CommandRejected) for e in events):
            self.applied.append(command)

    @rule(
        capability=st.sampled_from([None, "x", "y"]),
        assignee=st.sampled_from([None, *AGENTS]),
        retries=st.integers(0, 3),
        ttl=st.sampled_from([None, 5.0, 60.0]),
        requester=st.sampled_from([None, "r", "a"]),
    )
    def submit(
        self,
        capability: str | None,
        assignee: str | None,
        retries: int,
        ttl: float | None,
        requester: str | None,
    ) -> None:
        self._decide(
            SubmitTask(
                **env(self._id()),
                task_id=TASK,
                capability=capability,
                assignee_id=assignee,
                max_retries=retries,
                ttl_seconds=ttl,
                requester_id=requester,
                due_at=self.now + timedelta(seconds=3),
            )
        )

    @rule(state=st.sampled_from(STATES), actor=st.sampled_from([None, *AGENTS]))
    def update(self, state: str, actor: str | None) -> None:
        self._decide(
            UpdateTaskStatus.model_validate(
                {**env(self._id()), "task_id": TASK, "state": state, "agent_id": actor}
            )
        )

    @rule(actor=st.sampled_from([None, "r", *AGENTS]))
    def cancel(self, actor: str | None) -> None:
        self._decide(CancelTask(**env(self._id()), task_id=TASK, agent_id=actor))

    @rule(agent=st.sampled_from(AGENTS))
    def assign(self, agent: str) -> None:
        self._decide(AssignTask(**env(self._id()), task_id=TASK, agent_id=agent))

    @rule()
    def delete(self) -> None:
        self._decide(DeleteTask(**env(self._id()), task_id=TASK))

    @rule(agent=st.sampled_from(AGENTS), change=st.sampled_from(["online", "offline", "gone"]))
    def agent_changes(self, agent: str, change: str) -> None:
        if change == "gone":
            self.roster.agents.pop(agent, None)
        else:
            self.roster.agents[agent] = (AgentStatus(change), "x")

    @rule(seconds=st.integers(0, 10))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def timers(self) -> None:
        """What the worker's timer would send now."""
        lost = needs_release(self.entry, self.roster)
        if lost is not None:
            self._decide(ReleaseTask(**env(self._id()), task_id=TASK, agent_id=lost, reason="gone"))
        self._decide(RouteTask(**env(self._id()), task_id=TASK))
        self._decide(ExpireTask(**env(self._id()), task_id=TASK))
        self._decide(MarkTaskOverdue(**env(self._id()), task_id=TASK))

    @rule()
    def redeliver(self) -> None:
        """A command decided before comes again: nothing changes."""
        if self.applied:
            command = self.applied[-1]
            assert decide(command, self.entry, self.now, self.roster, POLICY) == []

    @invariant()
    def replay_reproduces_the_state(self) -> None:
        assert fold(self.log) == self.entry
        assert fold(self.log, self.entry) == self.entry

    @invariant()
    def sequence_numbers_are_contiguous(self) -> None:
        applied = [e.seq for e in self.log if not isinstance(e, CommandRejected)]
        assert applied == list(range(1, len(applied) + 1))

    @invariant()
    def terminal_states_are_absorbing(self) -> None:
        task = self.entry.task
        if task is None:
            return
        if self.was_terminal is not None:
            assert task.status.state is self.was_terminal
        elif is_terminal(task.status.state):
            self.was_terminal = task.status.state
            assert task.status.state in TERMINAL_STATES

    @invariant()
    def the_assignee_holds_the_one_open_assignment(self) -> None:
        task = self.entry.task
        if task is None:
            return
        open_ones = [a for a in self.entry.assignments if a.ended_at is None]
        assert len(open_ones) <= 1
        current = current_assignment(self.entry)
        if is_terminal(task.status.state):
            assert current is None
        else:
            assert task.assignee_id == (current.agent_id if current else None)
        assert task.retries <= task.max_retries + 1

    @invariant()
    def nothing_happens_after_a_terminal_event(self) -> None:
        done = False
        for event in self.log:
            if isinstance(event, CommandRejected):
                continue
            if done:
                # only a deletion of a finished task is still news
                assert event.type == "task.deleted"
            if isinstance(event, TaskStatusChanged) and event.state in TERMINAL_STATES:
                done = True


TaskMachine.TestCase.settings = settings(max_examples=250, stateful_step_count=40, deadline=None)
test_task_state_machine = TaskMachine.TestCase
