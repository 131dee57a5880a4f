"""The apps decider: registration, health and tools, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.apps import AppPolicy, decide, evolve, fold, initial_state
from schemas.apps import (
    APP_EVENT,
    AppCommand,
    AppEntry,
    AppEvent,
    AppHealthChanged,
    AppRegistered,
    AppRemoved,
    AppTool,
    AppToolsDiscovered,
    AppUpdated,
    DeregisterApp,
    RecordHealth,
    RecordTools,
    RegisterApp,
)
from schemas.base import CommandRejected
from schemas.ids import app_id_for

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
APP = app_id_for("stocks")
POLICY = AppPolicy(max_failures=3)
_ids = iter(range(1_000_000))


def env(**extra: Any) -> dict[str, Any]:
    return {"command_id": f"c{next(_ids)}", "issued_at": T0, "app_id": APP, **extra}


def register(**extra: Any) -> RegisterApp:
    return RegisterApp(
        **env(),
        name="stocks",
        scenario="finance",
        mcp_endpoint="http://127.0.0.1:9000/mcp",
        health_check_url="http://127.0.0.1:9000/health",
        **extra,
    )


def health(ok: bool, detail: str | None = None) -> RecordHealth:
    return RecordHealth(**env(), ok=ok, detail=detail)


def tools(*names: str) -> RecordTools:
    return RecordTools(**env(), tools=tuple(AppTool(name=n) for n in names))


def run(commands: list[AppCommand], entry: AppEntry | None = None) -> tuple[AppEntry, list[Any]]:
    state, log = entry or initial_state(), []
    for i, command in enumerate(commands):
        events = decide(command, state, T0 + timedelta(seconds=i), POLICY)
        state = fold(events, state)
        log.extend(events)
    return state, log


def test_registering_again_updates_and_keeps_what_was_discovered() -> None:
    entry, log = run([register(), tools("quote", "buy"), register(description="now with docs")])
    assert [type(e) for e in log] == [AppRegistered, AppToolsDiscovered, AppUpdated]
    assert entry.app is not None
    assert entry.app.description == "now with docs"
    assert entry.app.registered_at == T0 and entry.app.updated_at > T0
    assert [t.name for t in entry.app.tools] == ["quote", "buy"], "tools survive an update"


def test_probes_of_a_healthy_app_write_nothing() -> None:
    entry, _ = run([register()])
    for _ in range(5):
        assert decide(health(True), entry, T0, POLICY) == []
    assert decide(tools(), entry, T0, POLICY) == [], "an equal tool list is no news"


def test_consecutive_failures_remove_the_app_and_a_success_resets_the_count() -> None:
    entry, log = run([register(), health(False, "timeout"), health(False, "refused")])
    assert entry.app is not None and not entry.app.healthy
    assert entry.app.consecutive_failures == 2 and entry.app.last_failure == "refused"
    entry, log = run([health(True)], entry)
    [recovered] = log
    assert isinstance(recovered, AppHealthChanged) and recovered.healthy
    assert entry.app is not None and entry.app.consecutive_failures == 0

    entry, log = run([health(False), health(False), health(False, "503")], entry)
    assert isinstance(log[-1], AppRemoved) and log[-1].reason == "unhealthy"
    assert log[-1].detail == "3 failed health checks in a row; last: 503"
    assert entry.app is None
    assert decide(health(False), entry, T0, POLICY) == [], "a removed app is not probed"


def test_deregistration_and_refusals() -> None:
    [refused] = decide(DeregisterApp(**env()), initial_state(), T0, POLICY)
    assert isinstance(refused, CommandRejected) and refused.code == "not_found"
    entry, log = run([register(), DeregisterApp(**env(), reason="retired")])
    assert isinstance(log[-1], AppRemoved) and log[-1].reason == "deregistered"
    assert entry.app is None
    again, _ = run([register()], entry)
    assert again.app is not None and again.seq > entry.seq, "seq keeps counting"
    with pytest.raises(ValidationError):
        RegisterApp(**env(), name="x", mcp_endpoint="not a url", health_check_url="http://h/x")
    with pytest.raises(ValidationError):
        RegisterApp(**env(), name="", mcp_endpoint="http://h/mcp", health_check_url="http://h/x")


def test_a_redelivered_command_changes_nothing() -> None:
    command = health(False)
    entry, _ = run([register(), command])
    assert decide(command, entry, T0, POLICY) == []


commands = st.one_of(
    st.builds(lambda: register()),
    st.builds(lambda: DeregisterApp(**env())),
    st.builds(lambda ok: health(ok), st.booleans()),
    st.builds(lambda n: tools(*(f"t{i}" for i in range(n))), st.integers(0, 3)),
)


@given(st.lists(commands, max_size=30))
def test_any_history_keeps_the_rules_and_replays_to_the_same_state(
    history: list[AppCommand],
) -> None:
    entry, log = run(history)
    applied: list[AppEvent] = [e for e in log if not isinstance(e, CommandRejected)]
    # Failures stay under the threshold: the probe that reaches it removes the app.
    if entry.app is not None:
        assert entry.app.consecutive_failures < POLICY.max_failures
        assert entry.app.healthy == (entry.app.consecutive_failures == 0)
    # Versions only grow, one per event.
    assert [e.seq for e in applied] == list(range(1, len(applied) + 1))
    # The log rebuilds the state (and replaying it twice changes nothing); events round-trip.
    rebuilt = fold([APP_EVENT.validate_json(APP_EVENT.dump_json(e)) for e in applied])
    assert rebuilt.app == entry.app and fold(applied, rebuilt) == rebuilt
    # Deciding every command again changes nothing (redelivery).
    for command in history[-5:]:
        if command.command_id in entry.recent_command_ids:
            assert decide(command, entry, T0, POLICY) == []
    assert evolve(entry, applied[-1]) == entry if applied else True
