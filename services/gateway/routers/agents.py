"""``/agents``: register or renew, discover, heartbeat, deregister."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict

from schemas.a2a import AgentCard
from schemas.registry import AgentStatus, RegisteredAgent, ReportableStatus
from services.gateway.deps import HubDep, PageSize, PageToken, PathId
from services.gateway.errors import COMMAND_ERRORS
from services.usecases import registry

router = APIRouter(prefix="/agents", tags=["agents"], responses=COMMAND_ERRORS)

AgentId = PathId


class AgentList(BaseModel):
    agents: list[RegisteredAgent]
    next_page_token: str | None = None
    total: int  # agents matching the filters, on every page


class HeartbeatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: ReportableStatus | None = None


class Deleted(BaseModel):
    status: str = "deleted"
    agent_id: str


@router.post(
    "",
    response_model=RegisteredAgent,
    status_code=201,
    response_model_exclude_none=True,
    responses={200: {"model": RegisteredAgent, "description": "renewed: registered already"}},
)
async def register_agent(
    hub: HubDep,
    card: AgentCard,
    response: Response,
    ttl: Annotated[
        float | None, Query(gt=0, le=86_400, description="seconds of silence before offline")
    ] = None,
) -> RegisteredAgent:
    """Register an agent (201), or renew it (200): the same card name and version always
    get the same ``agent_id``, and a renewal is a heartbeat."""
    agent, created = await registry.register_agent(hub, card, ttl_seconds=ttl)
    if not created:
        response.status_code = 200
    return agent


@router.get("", response_model=AgentList, response_model_exclude_none=True)
async def list_agents(
    hub: HubDep,
    capability: Annotated[
        str | None, Query(max_length=200, description="skill id, name or tag")
    ] = None,
    skill: Annotated[str | None, Query(max_length=200, include_in_schema=False)] = None,
    tag: Annotated[str | None, Query(max_length=200, include_in_schema=False)] = None,
    status: AgentStatus | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="text in name, description, skills")
    ] = None,
    page_size: PageSize = registry.AGENT_PAGE,
    page_token: PageToken = None,
) -> AgentList:
    """Agents ordered by name then id, a page at a time (``total`` counts every page)."""
    try:
        page = registry.list_agents(
            hub,
            capability=capability or skill or tag,
            status=status,
            text=q,
            page_size=page_size,
            page_token=page_token,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return AgentList(agents=page.agents, next_page_token=page.next_page_token, total=page.total)


@router.get("/{agent_id}", response_model=RegisteredAgent, response_model_exclude_none=True)
async def get_agent(hub: HubDep, agent_id: AgentId) -> RegisteredAgent:
    return registry.get_agent(hub, agent_id)


@router.delete("/{agent_id}", response_model=Deleted)
async def deregister_agent(hub: HubDep, agent_id: AgentId) -> Deleted:
    await registry.deregister_agent(hub, agent_id)
    return Deleted(agent_id=agent_id)


@router.post(
    "/{agent_id}/heartbeat", response_model=RegisteredAgent, response_model_exclude_none=True
)
async def heartbeat(
    hub: HubDep, agent_id: AgentId, body: Annotated[HeartbeatBody | None, Body()] = None
) -> RegisteredAgent:
    """A sign of life; optionally report ``busy``, ``error`` or ``online``."""
    return await registry.heartbeat(hub, agent_id, status=body.status if body else None)


@router.put("/{agent_id}/status", response_model=RegisteredAgent, response_model_exclude_none=True)
async def set_status(hub: HubDep, agent_id: AgentId, body: HeartbeatBody) -> RegisteredAgent:
    """Report a status (a status report is also a sign of life)."""
    return await registry.heartbeat(hub, agent_id, status=body.status)
