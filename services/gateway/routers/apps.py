"""``/apps``: the registry of MCP apps, their tools, and calls through the proxy."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel

from schemas.apps import App, AppTool
from schemas.base import ENTITY_ID_PATTERN
from schemas.requests import ExecuteRequest, RegisterAppRequest, UpdateAppRequest
from services.gateway.deps import HubDep, PathId
from services.gateway.errors import APP_ERRORS
from services.usecases import apps

router = APIRouter(prefix="/apps", tags=["apps"], responses=APP_ERRORS)

AppId = PathId
AgentHeader = Annotated[
    str | None,
    Header(
        alias="X-Kolony-Agent-Id",
        max_length=128,
        pattern=ENTITY_ID_PATTERN,
        description="the calling agent, when the body does not name one",
    ),
]


class AppList(BaseModel):
    apps: list[App]
    total: int


class ToolList(BaseModel):
    app_id: str
    tools: list[AppTool]
    discovered_at: Any = None


class Deleted(BaseModel):
    status: str = "deleted"
    app_id: str


@router.post(
    "",
    response_model=App,
    status_code=201,
    response_model_exclude_none=True,
    responses={200: {"model": App, "description": "updated: an app of that name existed"}},
)
async def register_app(hub: HubDep, body: RegisterAppRequest, response: Response) -> App:
    """Register an MCP app (201), or update the app of that name (200). Its tools are
    listed right away; its ``health_check_url`` is probed from then on."""
    app, created = await apps.register_app(hub, body)
    if not created:
        response.status_code = 200
    return app


@router.get("", response_model=AppList, response_model_exclude_none=True)
async def list_apps(
    hub: HubDep,
    healthy_only: Annotated[bool, Query(description="leave out apps failing checks")] = False,
    scenario: Annotated[str | None, Query(max_length=100)] = None,
) -> AppList:
    found = apps.list_apps(hub, healthy_only=healthy_only, scenario=scenario)
    return AppList(apps=found, total=len(found))


@router.get("/{app_id}", response_model=App, response_model_exclude_none=True)
async def get_app(hub: HubDep, app_id: AppId) -> App:
    return apps.get_app(hub, app_id)


@router.put("/{app_id}", response_model=App, response_model_exclude_none=True)
async def update_app(hub: HubDep, app_id: AppId, body: UpdateAppRequest) -> App:
    """Change some fields of an app; it keeps its id."""
    return await apps.update_app(hub, app_id, body)


@router.delete("/{app_id}", response_model=Deleted)
async def deregister_app(hub: HubDep, app_id: AppId) -> Deleted:
    await apps.deregister_app(hub, app_id)
    return Deleted(app_id=app_id)


@router.get("/{app_id}/tools", response_model=ToolList, response_model_exclude_none=True)
async def app_tools(hub: HubDep, app_id: AppId) -> ToolList:
    """The app's tools as last discovered (on registration, then every few minutes)."""
    app = apps.get_app(hub, app_id)
    return ToolList(app_id=app.app_id, tools=list(app.tools), discovered_at=app.tools_discovered_at)


@router.post("/{app_id}/execute", response_model=apps.Execution, response_model_exclude_none=True)
async def execute(
    hub: HubDep, app_id: AppId, body: ExecuteRequest, agent: AgentHeader = None
) -> apps.Execution:
    """Call a tool of the app through the proxy, in the calling agent's own MCP session
    (REST twin of ``app__execute``). A tool's own error answers 200 with
    ``result.is_error``; an app that is unreachable or too slow answers 502/504."""
    return await apps.execute(
        hub,
        app_id,
        body.tool_name,
        body.arguments,
        agent_id=body.agent_id or agent,
        metadata=body.metadata,
    )
