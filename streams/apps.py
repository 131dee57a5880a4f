"""The apps processor: decides registrations, probes the apps it owns, lists their tools.

Health and tools are observed by the worker that owns the app's partition (one writer per
key), and reach the table only as commands through the log. The probe is a plain HTTP GET;
a probe that changes nothing (a healthy app still healthy) sends no command at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from datetime import UTC, datetime

import faust
import httpx

from core import apps
from kolony.appclient import discover_tools, probe
from kolony.commands import new_envelope
from kolony.settings import Settings
from schemas.apps import (
    APP_COMMAND,
    APP_ENTRY,
    APP_EVENT,
    App,
    AppCommand,
    AppEntry,
    AppEvent,
    AppHealthChanged,
    AppRegistered,
    AppUpdated,
    RecordHealth,
    RecordTools,
)
from schemas.topics import APPS_TABLE
from streams.codec import APP_ENTRY_CODEC
from streams.policies import app_policy
from streams.shell import BatchDecider

logger = logging.getLogger(__name__)

PROBES_AT_ONCE = 32


class AppProcessor(BatchDecider[AppCommand, AppEvent, AppEntry]):
    """Faust shell around :mod:`core.apps`, plus the health checker and tool discoverer."""

    command_adapter = APP_COMMAND
    event_adapter = APP_EVENT
    state_adapter = APP_ENTRY
    state_codec = APP_ENTRY_CODEC

    def __init__(self, app: faust.App, settings: Settings) -> None:
        topics = settings.topics
        super().__init__(
            app,
            settings,
            commands=topics.app_commands,
            events=topics.app_events,
            table=APPS_TABLE,
            name=f"{topics.prefix}.apps.decider",
        )
        self.policy = app_policy(settings)
        self._http: httpx.AsyncClient | None = None
        self._probing = asyncio.Semaphore(PROBES_AT_ONCE)
        # app id -> monotonic time its tools are due to be listed again
        self._discover_at: dict[str, float] = {}
        self._discovering: set[str] = set()
        app.timer(settings.app_health_interval, name=f"{topics.prefix}.apps.health")(self.check)

    def initial(self) -> AppEntry:
        return apps.initial_state()

    def decide(self, command: AppCommand, state: AppEntry, now: datetime) -> list[AppEvent]:
        return apps.decide(command, state, now, self.policy)

    def evolve(self, state: AppEntry, event: AppEvent) -> AppEntry:
        return apps.evolve(state, event)

    def decided_one(
        self,
        key: str,
        command: AppCommand | None,
        state: AppEntry,
        steps: list[tuple[AppEvent, AppEntry, AppEntry]],
        now: datetime,
    ) -> None:
        for event, _, _ in steps:
            # A new or changed app, or one answering again: list its tools now.
            if isinstance(event, AppRegistered | AppUpdated) or (
                isinstance(event, AppHealthChanged) and event.healthy
            ):
                self._discover_at[key] = 0.0
                if state.app is not None:
                    self._maybe_discover(state.app)

    # the checker

    async def check(self) -> None:
        """Probe every app this worker owns; list tools that are due."""
        owned = self.owned_partitions()
        due = [
            entry.app
            for key, entry in list(self.table.items())
            if entry is not None and entry.app is not None and self.owns(key, owned)
        ]
        await asyncio.gather(*(self._check_one(app) for app in due))

    async def _check_one(self, app: App) -> None:
        async with self._probing:
            ok, detail = await probe(
                self._http_client(), app.health_check_url, self.settings.app_health_timeout
            )
        if ok and app.healthy and app.consecutive_failures == 0:
            self._maybe_discover(app)
            return  # nothing to record
        self.send_command(
            RecordHealth(
                **new_envelope("app-health-checker"), app_id=app.app_id, ok=ok, detail=detail
            ),
        )

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=True)
        return self._http

    def _maybe_discover(self, app: App) -> None:
        now = time.monotonic()
        if app.app_id in self._discovering:
            return
        due = self._discover_at.get(app.app_id)
        if due is None:  # not seen since this worker started
            due = 0.0 if _stale(app, self.settings.app_tools_refresh) else now + _jitter(app)
            self._discover_at[app.app_id] = due
        if due > now:
            return
        self._discovering.add(app.app_id)
        self.app.loop.create_task(self._discover(app))

    async def _discover(self, app: App) -> None:
        refresh = self.settings.app_tools_refresh
        try:
            tools = await asyncio.wait_for(
                discover_tools(
                    app.mcp_endpoint,
                    within=self.settings.app_health_timeout,
                    protocol=self.settings.app_protocol,
                ),
                self.settings.app_health_timeout * 2,
            )
        except Exception as exc:  # any failure of a foreign server: try again later
            logger.warning("listing the tools of app %s failed: %r", app.app_id, exc)
            self._discover_at[app.app_id] = time.monotonic() + min(refresh, 30.0)
            return
        finally:
            self._discovering.discard(app.app_id)
        self._discover_at[app.app_id] = time.monotonic() + refresh
        self.send_command(
            RecordTools(**new_envelope("app-tool-discoverer"), app_id=app.app_id, tools=tools),
        )


def _stale(app: App, refresh: float) -> bool:
    listed = app.tools_discovered_at
    return listed is None or (datetime.now(UTC) - listed).total_seconds() > refresh


def _jitter(app: App) -> float:
    """Spread refreshes of apps found at startup over a minute, the same way each time."""
    return float(zlib.crc32(app.app_id.encode()) % 60)
