"""The registry decider: given / when / then, and properties over random command sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.registry import RegistryPolicy, decide, evolve, fold, initial_state
from schemas.a2a import AgentCard
from schemas.base import CommandRejected
from schemas.ids import agent_id_for
from schemas.registry import (
    AgentCommand,
    AgentDeregistered,
    AgentEvent,
    AgentExpired,
    AgentHeartbeatRecorded,
    AgentRegistered,
    AgentRenewed,
    AgentState,
    AgentStatus,
    AgentStatusChanged,
    DeregisterAgent,
    ExpireAgent,
    RecordHeartbeat,
    RegisterAgent,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RegistryPolicy(default_ttl_seconds=60)
AGENT = agent_id_for("a", "1")
CARD = AgentCard(name="a", version="1")


def register(
    command_id: str = "c-reg", card: AgentCard = CARD, ttl: float | None = None
) -> RegisterAgent:
    return RegisterAgent(
        command_id=command_id, issued_at=T0, agent_id=AGENT, card=card, ttl_seconds=ttl
    )


def heartbeat(command_id: str = "c-hb", status: AgentStatus | None = None) -> RecordHeartbeat:
    return RecordHeartbeat(command_id=command_id, issued_at=T0, agent_id=AGENT, status=status)


def deregister(command_id: str = "c-dereg") -> DeregisterAgent:
    return DeregisterAgent(command_id=command_id, issued_at=T0, agent_id=AGENT)


def expire(last_seen: datetime, command_id: str = "c-exp") -> ExpireAgent:
    return ExpireAgent(command_id=command_id, issued_at=T0, agent_id=AGENT, last_seen_at=last_seen)


def given_events(*commands: tuple[AgentCommand, datetime]) -> AgentState:
    state = initial_state()
    for command, at in commands:
        state = fold(decide(command, state, at, POLICY), state)
    return state


def test_first_registration_registers_with_the_default_ttl() -> None:
    events = decide(register(), initial_state(), T0, POLICY)
    assert [type(e) for e in events] == [AgentRegistered]
    state = fold(events)
    assert state.agent is not None
    assert state.agent.status is AgentStatus.ONLINE
    assert state.agent.ttl_seconds == 60
    assert state.agent.registered_at == state.agent.last_seen_at == T0
    assert state.seq == 1


def test_registering_again_renews_keeps_registration_time_and_updates_the_card() -> None:
    state = given_events((register(), T0))
    later = T0 + timedelta(seconds=5)
    new_card = AgentCard(name="a", version="1", description="better")
    events = decide(register("c-2", new_card), state, later, POLICY)
    assert [type(e) for e in events] == [AgentRenewed]
    after = fold(events, state)
    assert after.agent is not None
    assert after.agent.registered_at == T0 and after.agent.last_seen_at == later
    assert after.agent.card.description == "better"


def test_the_same_command_twice_changes_nothing() -> None:
    state = given_events((register(), T0))
    assert decide(register(), state, T0 + timedelta(seconds=1), POLICY) == []


def test_heartbeat_of_an_unknown_agent_is_rejected_with_a_reason() -> None:
    [event] = decide(heartbeat(), initial_state(), T0, POLICY)
    assert isinstance(event, CommandRejected)
    assert event.code == "not_found" and "not registered" in event.reason
    assert evolve(initial_state(), event) == initial_state()


def test_heartbeats_are_persisted_at_most_once_per_third_of_the_ttl() -> None:
    state = given_events((register(), T0))
    assert decide(heartbeat("h1"), state, T0 + timedelta(seconds=5), POLICY) == []
    events = decide(heartbeat("h2"), state, T0 + timedelta(seconds=20), POLICY)
    assert [type(e) for e in events] == [AgentHeartbeatRecorded]
    assert fold(events, state).agent.last_seen_at == T0 + timedelta(seconds=20)  # type: ignore[union-attr]


def test_agent_reported_status_changes_are_events() -> None:
    state = given_events((register(), T0))
    events = decide(heartbeat("h", AgentStatus.BUSY), state, T0, POLICY)
    assert [type(e) for e in events] == [AgentStatusChanged]
    assert fold(events, state).agent.status is AgentStatus.BUSY  # type: ignore[union-attr]


def test_a_silent_agent_expires_only_after_its_ttl() -> None:
    state = given_events((register(ttl=10), T0))
    not_yet = expire(T0)
    assert decide(not_yet, state, T0 + timedelta(seconds=10), POLICY) == []
    # A heartbeat the worker saw (but did not persist) keeps it alive.
    recent = expire(T0 + timedelta(seconds=8))
    assert decide(recent, state, T0 + timedelta(seconds=11), POLICY) == []
    events = decide(not_yet, state, T0 + timedelta(seconds=11), POLICY)
    assert [type(e) for e in events] == [AgentExpired]
    offline = fold(events, state)
    assert offline.agent is not None and offline.agent.status is AgentStatus.OFFLINE
    assert decide(not_yet, offline, T0 + timedelta(seconds=30), POLICY) == []


def test_an_expired_agent_comes_back_with_its_next_heartbeat() -> None:
    state = given_events((register(ttl=10), T0))
    state = fold(
        decide(expire(T0), state, T0 + timedelta(seconds=11), POLICY),
        state,
    )
    events = decide(heartbeat("back"), state, T0 + timedelta(seconds=12), POLICY)
    assert [type(e) for e in events] == [AgentStatusChanged]
    assert fold(events, state).agent.status is AgentStatus.ONLINE  # type: ignore[union-attr]


def test_deregistration_forgets_the_agent_but_not_its_sequence() -> None:
    state = given_events((register(), T0))
    events = decide(deregister(), state, T0, POLICY)
    assert [type(e) for e in events] == [AgentDeregistered]
    gone = fold(events, state)
    assert gone.agent is None and gone.seq == 2
    [rejected] = decide(deregister("again"), gone, T0, POLICY)
    assert isinstance(rejected, CommandRejected) and rejected.code == "not_found"
    back = fold(decide(register("re"), gone, T0, POLICY), gone)
    assert back.agent is not None and back.seq == 3


def test_event_ids_are_deterministic() -> None:
    assert decide(register(), initial_state(), T0, POLICY) == decide(
        register(), initial_state(), T0, POLICY
    )


# Properties over random command sequences.

statuses = st.sampled_from([None, AgentStatus.ONLINE, AgentStatus.BUSY, AgentStatus.ERROR])
command_ids = st.sampled_from([f"c{i}" for i in range(12)])
commands = st.one_of(
    st.builds(lambda c, ttl: register(c, ttl=ttl), command_ids, st.sampled_from([None, 5.0, 30.0])),
    st.builds(heartbeat, command_ids, statuses),
    st.builds(deregister, command_ids),
    st.builds(
        lambda c, s: expire(T0 + timedelta(seconds=s), c),
        command_ids,
        st.integers(0, 200),
    ),
)
steps = st.lists(st.tuples(commands, st.integers(min_value=0, max_value=40)), max_size=40)


def run(
    sequence: list[tuple[AgentCommand | ExpireAgent, int]],
) -> tuple[AgentState, list[AgentEvent]]:
    state, log, now = initial_state(), [], T0
    for command, advance in sequence:
        now += timedelta(seconds=advance)
        events = decide(command, state, now, POLICY)
        for event in events:
            state = evolve(state, event)
        log.extend(events)
    return state, log


@settings(max_examples=300, deadline=None)
@given(steps)
def test_replaying_the_emitted_events_reproduces_the_state(
    sequence: list[tuple[AgentCommand, int]],
) -> None:
    state, log = run(sequence)
    assert fold(log) == state


@settings(max_examples=300, deadline=None)
@given(steps)
def test_replaying_events_twice_changes_nothing(sequence: list[tuple[AgentCommand, int]]) -> None:
    state, log = run(sequence)
    assert fold(log, fold(log)) == state
    assert fold([e for e in log for _ in range(2)]) == state


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(min_value=0, max_value=39))
def test_deciding_an_applied_command_again_changes_nothing(
    sequence: list[tuple[AgentCommand, int]], pick: int
) -> None:
    state, _ = run(sequence)
    applied = [c for c, _ in sequence if c.command_id in state.recent_command_ids]
    for command in applied:
        assert decide(command, state, T0 + timedelta(days=1), POLICY) == []


@settings(max_examples=300, deadline=None)
@given(steps)
def test_every_rejection_has_a_reason_and_changes_nothing(
    sequence: list[tuple[AgentCommand, int]],
) -> None:
    state, log = run(sequence)
    for event in log:
        if isinstance(event, CommandRejected):
            assert event.reason and event.code in {"invalid", "not_found", "conflict", "forbidden"}
            assert evolve(state, event) is state


@settings(max_examples=300, deadline=None)
@given(steps)
def test_sequence_numbers_increase_by_one(sequence: list[tuple[AgentCommand, int]]) -> None:
    _, log = run(sequence)
    applied = [e.seq for e in log if not isinstance(e, CommandRejected)]
    assert applied == list(range(1, len(applied) + 1))


@settings(max_examples=300, deadline=None)
@given(steps)
def test_no_heartbeat_or_expiry_without_a_registration(
    sequence: list[tuple[AgentCommand, int]],
) -> None:
    state, log = run(sequence)
    registered = False
    for event in log:
        if isinstance(event, AgentRegistered):
            registered = True
        elif isinstance(event, AgentDeregistered):
            registered = False
        elif not isinstance(event, CommandRejected):
            assert registered, f"{event.type} for an agent that is not registered"
