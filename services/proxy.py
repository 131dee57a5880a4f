"""The app proxy: calls tools of registered MCP apps on behalf of agents.

Each (agent, app) pair has its own MCP client session with the app, so a stateful app keeps
one agent's state apart from another's. Sessions are opened on first use, kept while used,
closed after ``app_session_idle`` seconds without a call, when the app is removed or moves,
and when an agent opens more than ``app_sessions_per_agent`` (its least recently used goes).
Opening a session costs a handshake (hundreds of milliseconds in the MCP SDK); reusing one
costs one HTTP round trip.

A session's client lives in a task of its own: the MCP SDK's transports must be closed by
the task that opened them, and calls may come from any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, RequestParamsMeta

from kolony.appclient import connect
from kolony.settings import Settings
from schemas.apps import App

logger = logging.getLogger(__name__)

CONTEXT_META_KEY = "kolony/context"
"""The ``_meta`` key under which every proxied call carries its caller's context."""

AGENT_HEADER = "X-Kolony-Agent-Id"
SESSION_HEADER = "X-Kolony-Session-Id"
OPERATOR = ""  # the session key of calls made without an agent
ABANDON_GRACE = 5.0  # seconds the SDK gets to give up a timed-out call on its own


class AppCallError(RuntimeError):
    """The app could not be reached, did not answer in time, or broke the protocol."""


class AppTimedOut(AppCallError):
    """The app accepted the call but did not answer within ``app_call_timeout`` (HTTP 504)."""


class TooManySessions(RuntimeError):
    """Every session the agent may hold is busy with a call (HTTP 429)."""


@dataclass(eq=False)
class ProxySession:
    """One agent's MCP session with one app."""

    agent_id: str
    app_id: str
    endpoint: str
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client: Client | None = None
    last_used: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    broken: bool = False
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def open(self, settings: Settings) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(settings, ready), name=f"app-session-{self}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), settings.app_call_timeout)
        except BaseException:
            await self.close()
            raise

    async def _hold(self, settings: Settings, ready: asyncio.Future[None]) -> None:
        headers = {SESSION_HEADER: self.session_id}
        if self.agent_id:
            headers[AGENT_HEADER] = self.agent_id
        try:
            async with connect(
                self.endpoint,
                within=settings.app_call_timeout,
                headers=headers,
                protocol=settings.app_protocol,
            ) as client:
                self.client = client
                ready.set_result(None)
                await self._closing.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the app went away, or never answered
            self.broken = True
            if not ready.done():
                ready.set_exception(AppCallError(_describe(exc)))
            else:
                logger.info("session %s with app %s ended: %s", self, self.app_id, _describe(exc))
        finally:
            self.broken = True
            self.client = None

    async def close(self) -> None:
        self.broken = True
        self._closing.set()
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except (TimeoutError, Exception):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def __str__(self) -> str:
        return f"{self.agent_id or 'operator'}->{self.app_id}"


class AppProxy:
    """Sessions per (agent, app), and the calls through them."""

    def __init__(self, settings: Settings, registered: Callable[[], list[App]]) -> None:
        self.settings = settings
        self._registered = registered  # the apps registered now (the gateway's read model)
        self._sessions: dict[tuple[str, str], ProxySession] = {}
        self._opening: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.opened = 0

    # lifecycle

    def start(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever(), name="app-session-reaper")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions))

    # calls

    async def call(
        self,
        app: App,
        tool_name: str,
        arguments: dict[str, Any],
        *,
        agent_id: str | None,
        context: dict[str, Any],
        session: ProxySession | None = None,
    ) -> CallToolResult:
        """Call ``tool_name`` in ``agent_id``'s session with ``app``; an error the tool
        reports comes back as a result with ``is_error``, anything else raises
        :class:`AppCallError`."""
        session = session or await self.session(agent_id, app)
        client = session.client
        if client is None or session.broken:
            raise AppCallError(f"the session with app {app.app_id!r} closed")
        session.in_flight += 1
        session.last_used = time.monotonic()
        timeout = self.settings.app_call_timeout
        late = AppTimedOut(f"app {app.name!r} did not answer within {timeout:g} s")
        try:
            # The SDK's own timeout: it abandons the request cleanly and tells the app to
            # stop (a cancelled task could leave the session's streams in a bad state).
            return await asyncio.wait_for(
                client.call_tool(
                    tool_name,
                    arguments,
                    read_timeout_seconds=timeout,
                    meta=cast(RequestParamsMeta, {CONTEXT_META_KEY: context}),
                ),
                timeout + ABANDON_GRACE,
            )
        except TimeoutError:  # not even the SDK's timeout came back: give the session up
            await self._drop(session)
            raise late from None
        except MCPError as exc:
            if exc.error.code == REQUEST_TIMEOUT:
                raise late from None
            if exc.error.code == CONNECTION_CLOSED:  # the transport gave up, not the app
                await self._drop(session)
                raise AppCallError(f"app {app.name!r} is unreachable: {exc}") from exc
            raise AppCallError(f"app {app.name!r} answered with an error: {exc}") from exc
        except Exception as exc:
            await self._drop(session)  # its transport is gone; the next call reopens
            raise AppCallError(f"app {app.name!r} is unreachable: {_describe(exc)}") from exc
        finally:
            session.in_flight -= 1
            session.last_used = time.monotonic()

    async def session(self, agent_id: str | None, app: App) -> ProxySession:
        """The agent's open session with ``app``, opened now if it has none."""
        key = (agent_id or OPERATOR, app.app_id)
        existing = self._sessions.get(key)
        if existing is not None and self._usable(existing, app):
            return existing
        async with self._opening[key]:
            existing = self._sessions.get(key)
            if existing is not None and self._usable(existing, app):
                return existing
            if existing is not None:
                await self._drop(existing)
            await self._make_room(key[0])
            session = ProxySession(agent_id=key[0], app_id=app.app_id, endpoint=app.mcp_endpoint)
            try:
                await session.open(self.settings)
            except TimeoutError:
                raise AppTimedOut(
                    f"app {app.name!r} did not accept a session within "
                    f"{self.settings.app_call_timeout:g} s"
                ) from None
            self._sessions[key] = session
            self.opened += 1
            return session

    def sessions(self, agent_id: str | None = None) -> list[ProxySession]:
        if agent_id is None:
            return list(self._sessions.values())
        return [s for (agent, _), s in self._sessions.items() if agent == agent_id]

    async def close_app(self, app_id: str) -> None:
        """Close every session with ``app_id`` (it was removed)."""
        await asyncio.gather(*(self._drop(s) for s in self.sessions() if s.app_id == app_id))

    def close_app_soon(self, app_id: str) -> None:
        """:meth:`close_app` in the background (from synchronous code, such as a fold)."""
        if not any(s.app_id == app_id for s in self.sessions()):
            return
        task = asyncio.get_running_loop().create_task(self.close_app(app_id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # housekeeping

    def _usable(self, session: ProxySession, app: App) -> bool:
        return not session.broken and session.endpoint == app.mcp_endpoint

    async def _make_room(self, agent_id: str) -> None:
        mine = [s for s in self.sessions(agent_id) if not s.broken]
        if len(mine) < self.settings.app_sessions_per_agent:
            return
        idle = [s for s in mine if s.in_flight == 0]
        if not idle:
            cap = self.settings.app_sessions_per_agent
            raise TooManySessions(
                f"agent {agent_id or 'operator'!r} has {cap} app sessions busy "
                f"(KOLONY_APP_SESSIONS_PER_AGENT); try again when a call finishes"
            )
        await self._drop(min(idle, key=lambda s: s.last_used))

    async def _drop(self, session: ProxySession) -> None:
        key = (session.agent_id, session.app_id)
        if self._sessions.get(key) is session:
            del self._sessions[key]
        await session.close()

    async def reap(self) -> int:
        """Close sessions idle too long, broken, or with apps gone or moved; how many."""
        apps = {app.app_id: app for app in self._registered()}
        now = time.monotonic()
        idle_after = self.settings.app_session_idle
        stale = [
            s
            for s in self.sessions()
            if s.broken
            or (s.in_flight == 0 and now - s.last_used > idle_after)
            or s.app_id not in apps
            or apps[s.app_id].mcp_endpoint != s.endpoint
        ]
        await asyncio.gather(*(self._drop(s) for s in stale))
        return len(stale)

    async def _reap_forever(self) -> None:
        interval = min(self.settings.app_session_idle / 4, 30.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap()
            except Exception:
                logger.exception("closing idle app sessions failed")


def _describe(exc: BaseException) -> str:
    """One line for an exception, unwrapping the exception groups anyio raises."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500] if text != type(exc).__name__ else text
