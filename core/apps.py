"""The apps decider: registration, health and tools of MCP apps.

Only changes become events. A healthy app answering its probe, or a tool list equal to the
one on record, writes nothing: the checker may probe every few seconds without growing the
log. ``max_failures`` probes failing in a row remove the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.envelopes import envelope, rejection, remember
from schemas.apps import (
    App,
    AppCommand,
    AppEntry,
    AppEvent,
    AppHealthChanged,
    AppRegistered,
    AppRemoved,
    AppToolsDiscovered,
    AppUpdated,
    DeregisterApp,
    RecordHealth,
    RecordTools,
    RegisterApp,
)
from schemas.base import CommandRejected, RejectionCode


@dataclass(frozen=True)
class AppPolicy:
    max_failures: int = 3  # consecutive failed probes that remove an app


def initial_state() -> AppEntry:
    return AppEntry()


def decide(
    command: AppCommand, entry: AppEntry, now: datetime, policy: AppPolicy
) -> list[AppEvent]:
    """The events ``command`` causes on ``entry`` at ``now`` (empty: nothing to do)."""
    if command.command_id in entry.recent_command_ids:
        return []
    app = entry.app
    match command:
        case RegisterApp():
            return _register(command, entry, now)
        case DeregisterApp():
            if app is None:
                reason = f"app {command.app_id!r} is not registered"
                return [_reject(command, now, "not_found", reason)]
            return [
                AppRemoved(
                    **_env(command, entry, now),
                    app_id=app.app_id,
                    reason="deregistered",
                    detail=command.reason,
                )
            ]
        case RecordHealth():
            return [] if app is None else _health(command, entry, app, now, policy)
        case RecordTools():
            if app is None or command.tools == app.tools:
                return []
            return [
                AppToolsDiscovered(
                    **_env(command, entry, now), app_id=app.app_id, tools=command.tools
                )
            ]


def _register(command: RegisterApp, entry: AppEntry, now: datetime) -> list[AppEvent]:
    before = entry.app
    app = App(
        app_id=command.app_id,
        name=command.name,
        description=command.description,
        scenario=command.scenario,
        mcp_endpoint=str(command.mcp_endpoint),
        health_check_url=str(command.health_check_url),
        metadata=command.metadata,
        registered_at=before.registered_at if before else now,
        updated_at=now,
        tools=before.tools if before else (),
        tools_discovered_at=before.tools_discovered_at if before else None,
    )
    if before is None:
        return [AppRegistered(**_env(command, entry, now), app=app)]
    # Registering again also declares the app up: its failure count starts over.
    return [AppUpdated(**_env(command, entry, now), app=app)]


def _health(
    command: RecordHealth, entry: AppEntry, app: App, now: datetime, policy: AppPolicy
) -> list[AppEvent]:
    if command.ok:
        if app.healthy and app.consecutive_failures == 0:
            return []  # the usual case: nothing to write
        return [
            AppHealthChanged(
                **_env(command, entry, now),
                app_id=app.app_id,
                healthy=True,
                consecutive_failures=0,
                detail=command.detail,
            )
        ]
    failures = app.consecutive_failures + 1
    if failures >= policy.max_failures:
        detail = f"{failures} failed health checks in a row" + (
            f"; last: {command.detail}" if command.detail else ""
        )
        return [
            AppRemoved(
                **_env(command, entry, now), app_id=app.app_id, reason="unhealthy", detail=detail
            )
        ]
    return [
        AppHealthChanged(
            **_env(command, entry, now),
            app_id=app.app_id,
            healthy=False,
            consecutive_failures=failures,
            detail=command.detail,
        )
    ]


def evolve(entry: AppEntry, event: AppEvent) -> AppEntry:
    """The entry after ``event``; an event applied already (``seq`` not newer) changes nothing."""
    if isinstance(event, CommandRejected) or event.seq <= entry.seq:
        return entry
    app = entry.app
    match event:
        case AppRegistered() | AppUpdated():
            app = event.app
        case AppHealthChanged() if app is not None:
            app = app.model_copy(
                update={
                    "healthy": event.healthy,
                    "consecutive_failures": event.consecutive_failures,
                    "last_failure": None if event.healthy else event.detail,
                    "updated_at": event.occurred_at,
                }
            )
        case AppToolsDiscovered() if app is not None:
            app = app.model_copy(
                update={"tools": event.tools, "tools_discovered_at": event.occurred_at}
            )
        case AppRemoved():
            app = None
    return AppEntry(
        app=app,
        seq=event.seq,
        recent_command_ids=remember(entry.recent_command_ids, event.command_id),
    )


def fold(events: list[AppEvent], entry: AppEntry | None = None) -> AppEntry:
    state = entry or initial_state()
    for event in events:
        state = evolve(state, event)
    return state


def _env(command: AppCommand, entry: AppEntry, now: datetime) -> dict[str, object]:
    return envelope(command.command_id, command.correlation_id, entry.seq, now)


def _reject(
    command: AppCommand, now: datetime, code: RejectionCode, reason: str
) -> CommandRejected:
    return rejection(
        command.command_id, command.correlation_id, command.type, command.app_id, now, code, reason
    )
