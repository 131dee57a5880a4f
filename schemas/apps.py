"""MCP apps: registered tool servers the hub health-checks and proxies (Thronglets' Apps).

An app is keyed by its ``app_id`` (derived from its name, so registering the same name again
updates it). Health checks and tool discoveries arrive as commands from the hub's checker;
only changes become events: a healthy app answering its probe writes nothing to the log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, AwareDatetime, Field, TypeAdapter

from schemas.base import (
    SCHEMA_VERSION,
    CommandEnvelope,
    CommandRejected,
    EntityId,
    EventEnvelope,
    Frozen,
)

AppName = Annotated[str, Field(min_length=1, max_length=200)]
Scenario = Annotated[str, Field(min_length=1, max_length=100)]
Detail = Annotated[str, Field(max_length=1_000)]
MAX_TOOLS = 500


class AppTool(Frozen):
    """A tool an app serves, as its MCP ``tools/list`` describes it."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=10_000)] | None = None
    input_schema: dict[str, Any] = Field(default_factory=dict)


class App(Frozen):
    """A registered app, as readers see it."""

    app_id: str
    name: str
    description: str | None = None
    scenario: str | None = None
    mcp_endpoint: str
    health_check_url: str
    metadata: dict[str, Any] | None = None
    healthy: bool = True
    consecutive_failures: int = 0
    last_failure: str | None = None
    tools: tuple[AppTool, ...] = ()
    tools_discovered_at: AwareDatetime | None = None
    registered_at: AwareDatetime
    updated_at: AwareDatetime


# Commands: imperative, keyed by app_id on the apps command topic.


class RegisterApp(CommandEnvelope):
    """Register an app, or update it when the name is registered already."""

    type: Literal["app.register"] = "app.register"
    app_id: EntityId
    name: AppName
    description: Annotated[str, Field(max_length=10_000)] | None = None
    scenario: Scenario | None = None
    mcp_endpoint: AnyHttpUrl
    health_check_url: AnyHttpUrl
    metadata: dict[str, Any] | None = None


class DeregisterApp(CommandEnvelope):
    type: Literal["app.deregister"] = "app.deregister"
    app_id: EntityId
    reason: Detail | None = None


class RecordHealth(CommandEnvelope):
    """One probe's outcome, from the health checker."""

    type: Literal["app.record_health"] = "app.record_health"
    app_id: EntityId
    ok: bool
    detail: Detail | None = None


class RecordTools(CommandEnvelope):
    """What the app's ``tools/list`` answered, from the discoverer."""

    type: Literal["app.record_tools"] = "app.record_tools"
    app_id: EntityId
    tools: tuple[AppTool, ...] = Field(max_length=MAX_TOOLS)


AppCommand = Annotated[
    RegisterApp | DeregisterApp | RecordHealth | RecordTools, Field(discriminator="type")
]
APP_COMMAND = TypeAdapter(AppCommand)


# Events: past tense, keyed by app_id on the apps event topic.


class AppRegistered(EventEnvelope):
    type: Literal["app.registered"] = "app.registered"
    app: App


class AppUpdated(EventEnvelope):
    """Registered again: its description, endpoints or metadata changed."""

    type: Literal["app.updated"] = "app.updated"
    app: App


class AppHealthChanged(EventEnvelope):
    """A probe failed (``healthy`` false while failures stay under the threshold), or an
    app that had failed answered again."""

    type: Literal["app.health_changed"] = "app.health_changed"
    app_id: str
    healthy: bool
    consecutive_failures: int
    detail: str | None = None


class AppToolsDiscovered(EventEnvelope):
    type: Literal["app.tools_discovered"] = "app.tools_discovered"
    app_id: str
    tools: tuple[AppTool, ...]


class AppRemoved(EventEnvelope):
    """Deregistered, or removed after too many failed health checks in a row."""

    type: Literal["app.removed"] = "app.removed"
    app_id: str
    reason: Literal["deregistered", "unhealthy"]
    detail: str | None = None


AppEvent = Annotated[
    AppRegistered
    | AppUpdated
    | AppHealthChanged
    | AppToolsDiscovered
    | AppRemoved
    | CommandRejected,
    Field(discriminator="type"),
]
APP_EVENT = TypeAdapter(AppEvent)


class AppEntry(Frozen):
    """The apps decider's state for one app id: the table's value.

    ``app`` is None before the first registration and after removal; ``seq`` keeps counting
    across both, so a replayed old event is always recognised.
    """

    app: App | None = None
    seq: int = 0
    recent_command_ids: tuple[str, ...] = ()


APP_ENTRY = TypeAdapter(AppEntry)


# Proxied calls: what the hub's proxy observed, keyed by app_id on the app calls topic.
# They are observations, not decisions (no decider, no ``seq``): each call writes a
# ``requested`` and then a ``completed`` or ``failed`` with the same ``call_id``.


class CallEnvelope(Frozen):
    event_id: str
    occurred_at: AwareDatetime
    schema_version: int = SCHEMA_VERSION
    call_id: str
    app_id: str
    agent_id: str | None = None
    tool_name: str


class AppCallRequested(CallEnvelope):
    type: Literal["app.call_requested"] = "app.call_requested"
    arguments: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(default=None, description="the proxy's session with the app")


class AppCallCompleted(CallEnvelope):
    """The app answered; ``is_error`` when the tool itself reported an error."""

    type: Literal["app.call_completed"] = "app.call_completed"
    duration_ms: float
    is_error: bool = False


class AppCallFailed(CallEnvelope):
    """No answer: the app was unreachable, timed out, or broke the protocol."""

    type: Literal["app.call_failed"] = "app.call_failed"
    duration_ms: float
    error: str


AppCallEvent = Annotated[
    AppCallRequested | AppCallCompleted | AppCallFailed, Field(discriminator="type")
]
APP_CALL_EVENT = TypeAdapter(AppCallEvent)
