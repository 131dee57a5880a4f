"""``/memory``: versioned shared values with compare-and-set, access control, subscriptions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel

from schemas.events import ANY_EVENT
from schemas.memory import MemoryItem
from schemas.requests import SetMemoryRequest, SubscribeRequest
from services.gateway.deps import HubDep, PageSize, PageToken, PathId
from services.gateway.errors import COMMAND_ERRORS
from services.usecases import memory, registry

router = APIRouter(tags=["memory"], responses=COMMAND_ERRORS)

Key = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
AgentId = PathId
Reader = Annotated[
    str | None, Query(max_length=128, description="the reading agent (default: the operator)")
]


class MemoryList(BaseModel):
    items: list[MemoryItem]
    next_page_token: str | None = None
    total: int  # on every page


class Deleted(BaseModel):
    status: str = "deleted"
    key: str


class Subscriptions(BaseModel):
    agent_id: str
    subscriptions: list[str]


@router.put(
    "/memory/{key}",
    response_model=MemoryItem,
    status_code=201,
    responses={200: {"model": MemoryItem, "description": "written again (the key existed)"}},
)
async def set_value(
    hub: HubDep, key: Key, body: SetMemoryRequest, response: Response
) -> MemoryItem:
    """Write a JSON value: 201 when the key was created, 200 when it was written again.
    With ``expected_version`` it is compare-and-set: a lost race answers 409 with
    ``current_version``. Only writers may write, only the owner may change
    ``readers``/``writers``: others get 403."""
    item, created = await memory.set_value(hub, key, body)
    if not created:
        response.status_code = 200
    return item


@router.get("/memory", response_model=MemoryList)
async def list_values(
    hub: HubDep,
    prefix: Annotated[str, Query(max_length=256)] = "",
    agent_id: Reader = None,
    page_size: PageSize = memory.MEMORY_PAGE,
    page_token: PageToken = None,
) -> MemoryList:
    """Keys under ``prefix`` that ``agent_id`` may read, by key, a page at a time."""
    try:
        page = memory.list_values(
            hub, prefix=prefix, agent_id=agent_id, page_size=page_size, page_token=page_token
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return MemoryList(items=page.items, next_page_token=page.next_page_token, total=page.total)


@router.get("/memory/{key}", response_model=MemoryItem)
async def get_value(hub: HubDep, key: Key, agent_id: Reader = None) -> MemoryItem:
    return memory.get_value(hub, key, agent_id=agent_id)


@router.delete("/memory/{key}", response_model=Deleted)
async def delete_value(
    hub: HubDep,
    key: Key,
    agent_id: Reader = None,
    expected_version: Annotated[int | None, Query(ge=1)] = None,
) -> Deleted:
    await memory.delete_value(hub, key, agent_id=agent_id, expected_version=expected_version)
    return Deleted(key=key)


@router.get("/memory/{key}/history")
async def history(hub: HubDep, key: Key, agent_id: Reader = None) -> list[dict[str, Any]]:
    """The key's recent writes and deletions, oldest first."""
    return [
        ANY_EVENT.dump_python(e, mode="json", exclude_none=True)
        for e in memory.history(hub, key, agent_id=agent_id)
    ]


@router.get("/agents/{agent_id}/subscriptions", response_model=Subscriptions)
async def subscriptions(hub: HubDep, agent_id: AgentId) -> Subscriptions:
    agent = registry.get_agent(hub, agent_id)
    return Subscriptions(agent_id=agent_id, subscriptions=list(agent.subscriptions))


@router.post("/agents/{agent_id}/subscriptions", response_model=Subscriptions)
async def subscribe(hub: HubDep, agent_id: AgentId, body: SubscribeRequest) -> Subscriptions:
    """Hear ``memory.updated`` for these keys and prefixes (inbox, WebSocket)."""
    held = await registry.subscribe(hub, agent_id, body.all_patterns())
    return Subscriptions(agent_id=agent_id, subscriptions=list(held))


@router.delete("/agents/{agent_id}/subscriptions", response_model=Subscriptions)
async def unsubscribe(hub: HubDep, agent_id: AgentId, body: SubscribeRequest) -> Subscriptions:
    held = await registry.unsubscribe(hub, agent_id, body.all_patterns())
    return Subscriptions(agent_id=agent_id, subscriptions=list(held))
