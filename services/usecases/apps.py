"""App registry and proxy operations: the one place REST and MCP both call."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from mcp_types import CallToolResult
from pydantic import BaseModel

from kolony.commands import new_envelope
from schemas.apps import (
    App,
    AppCallCompleted,
    AppCallEvent,
    AppCallFailed,
    AppCallRequested,
    AppTool,
    DeregisterApp,
    RegisterApp,
)
from schemas.ids import app_id_for
from schemas.requests import RegisterAppRequest, UpdateAppRequest
from services.hub import Hub
from services.proxy import AppCallError
from services.usecases.registry import get_agent, require_caught_up


class UnknownApp(LookupError):
    def __init__(self, app_id: str) -> None:
        super().__init__(f"app {app_id!r} is not registered")
        self.app_id = app_id


class UnknownTool(LookupError):
    def __init__(self, app: App, tool_name: str) -> None:
        names = ", ".join(t.name for t in app.tools[:20]) or "none"
        super().__init__(f"app {app.name!r} has no tool {tool_name!r} (its tools: {names})")


class Execution(BaseModel):
    """What a proxied call answered, with the call's id in the log and its duration."""

    call_id: str
    app_id: str
    tool_name: str
    agent_id: str | None = None
    duration_ms: float
    result: CallToolResult


async def register_app(
    hub: Hub, request: RegisterAppRequest, *, issued_by: str = "gateway"
) -> tuple[App, bool]:
    """Register an app, or update the one with that name; ``(app, created)``."""
    app_id = app_id_for(request.name)
    created = hub.apps.get(app_id) is None
    command = RegisterApp(**new_envelope(issued_by), app_id=app_id, **request.model_dump())
    await hub.execute(command)
    return _require(hub, app_id), created


async def update_app(
    hub: Hub, app_id: str, request: UpdateAppRequest, *, issued_by: str = "gateway"
) -> App:
    """Change some of an app's fields; the app keeps its id even if renamed."""
    app = get_app(hub, app_id)
    changes = request.model_dump(exclude_unset=True, exclude_none=True)
    current = {
        "name": app.name,
        "description": app.description,
        "scenario": app.scenario,
        "mcp_endpoint": app.mcp_endpoint,
        "health_check_url": app.health_check_url,
        "metadata": app.metadata,
    }
    command = RegisterApp(**new_envelope(issued_by), app_id=app_id, **(current | changes))
    await hub.execute(command)
    return _require(hub, app_id)


async def deregister_app(
    hub: Hub, app_id: str, *, reason: str | None = None, issued_by: str = "gateway"
) -> None:
    get_app(hub, app_id)
    command = DeregisterApp(**new_envelope(issued_by), app_id=app_id, reason=reason)
    await hub.execute(command)
    await hub.proxy.close_app(app_id)


def get_app(hub: Hub, app_id: str) -> App:
    require_caught_up(hub)
    return _require(hub, app_id)


def list_apps(hub: Hub, *, healthy_only: bool = False, scenario: str | None = None) -> list[App]:
    require_caught_up(hub)
    return [
        app
        for app in hub.apps.apps()
        if (app.healthy or not healthy_only) and (scenario is None or app.scenario == scenario)
    ]


def app_tools(hub: Hub, app_id: str) -> tuple[AppTool, ...]:
    return get_app(hub, app_id).tools


async def execute(
    hub: Hub,
    app_id: str,
    tool_name: str,
    arguments: dict[str, Any],
    *,
    agent_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Execution:
    """Call ``tool_name`` of the app in the agent's own session, recording the call.

    The app receives the caller's context under ``_meta["kolony/context"]``. A tool that
    reports an error answers normally with ``result.is_error``; an app that cannot be
    reached or does not answer in time raises :class:`services.proxy.AppCallError`.
    """
    app = get_app(hub, app_id)
    if app.tools_discovered_at is not None and all(t.name != tool_name for t in app.tools):
        raise UnknownTool(app, tool_name)
    agent_name = get_agent(hub, agent_id).card.name if agent_id is not None else None
    session = await hub.proxy.session(agent_id, app)
    call_id = str(uuid.uuid4())
    context: dict[str, Any] = {
        "agent_id": agent_id,
        "agent_name": agent_name,
        "session_id": session.session_id,
        "call_id": call_id,
        "hub": hub.topics.prefix,
    }
    if metadata:
        context["metadata"] = metadata
    base = {"call_id": call_id, "app_id": app.app_id, "agent_id": agent_id, "tool_name": tool_name}
    await _record(
        hub,
        AppCallRequested(
            **_event(call_id, 0),
            **base,
            arguments=arguments,
            session_id=session.session_id,
        ),
    )
    started = time.perf_counter()
    try:
        result = await hub.proxy.call(
            app, tool_name, arguments, agent_id=agent_id, context=context, session=session
        )
    except AppCallError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        await _record(
            hub, AppCallFailed(**_event(call_id, 1), **base, duration_ms=elapsed, error=str(exc))
        )
        raise
    elapsed = (time.perf_counter() - started) * 1000
    await _record(
        hub,
        AppCallCompleted(
            **_event(call_id, 1), **base, duration_ms=elapsed, is_error=bool(result.is_error)
        ),
    )
    return Execution(
        call_id=call_id,
        app_id=app.app_id,
        tool_name=tool_name,
        agent_id=agent_id,
        duration_ms=elapsed,
        result=result,
    )


def _event(call_id: str, index: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(uuid.UUID(call_id), str(index))),
        "occurred_at": datetime.now(UTC),
    }


async def _record(hub: Hub, event: AppCallEvent) -> None:
    await hub.record(
        hub.topics.app_calls, event.app_id, event.model_dump_json(exclude_none=True).encode()
    )


def _require(hub: Hub, app_id: str) -> App:
    app = hub.apps.get(app_id)
    if app is None:
        raise UnknownApp(app_id)
    return app
