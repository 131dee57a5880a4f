"""Health, the hub's own AgentCard, and system information."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

import kolony
from schemas.a2a import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from services.gateway.deps import HubDep, SettingsDep

router = APIRouter(tags=["system"])


def hub_card(base_url: str) -> AgentCard:
    return AgentCard(
        name="Kolony",
        description="Kafka-native control plane for AI agent networks",
        version=kolony.__version__,
        supported_interfaces=[AgentInterface(url=base_url, protocol_binding="HTTP+JSON")],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        skills=[
            AgentSkill(
                id="agent-registry",
                name="Agent Registry",
                description="Register agents and discover them by capability",
                tags=["registry", "discovery"],
            ),
            AgentSkill(
                id="task-delegation",
                name="Task Delegation",
                description="Delegate tasks to agents by id or capability and track them",
                tags=["tasks", "delegation", "routing"],
            ),
        ],
        default_input_modes=["application/json"],
        default_output_modes=["application/json"],
    )


@router.get("/health")
async def health(hub: HubDep) -> JSONResponse:
    """Ready when Kafka answers, the event log is folded and a stream worker is alive."""
    workers = hub.live_workers()
    broker_ok = hub.broker_reachable()
    ready = broker_ok and hub.caught_up and bool(workers)
    body: dict[str, Any] = {
        "status": "ok" if ready else "degraded",
        "time": datetime.now(UTC).isoformat(),
        "broker": {"reachable": broker_ok},
        "read_model": {
            "caught_up": hub.caught_up,
            "agents": len(hub.directory.agents()),
            "tasks": len(hub.board.tasks()),
            "apps": len(hub.apps.apps()),
            "app_sessions": len(hub.proxy.sessions()),
        },
        "workers": [
            {
                "worker_id": w.worker_id,
                "last_beacon_at": w.at.isoformat(),
                "active_partitions": list(w.active_partitions),
                "agents_owned": w.agents_owned,
                "commands_decided": w.commands_decided,
                "tasks_open": w.tasks_open,
                "network_view_caught_up": w.network_view_caught_up,
            }
            for w in workers
        ],
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/.well-known/agent", response_model=AgentCard, response_model_exclude_none=True)
@router.get(
    "/.well-known/agent-card.json", response_model=AgentCard, response_model_exclude_none=True
)
async def well_known_card(request: Request) -> AgentCard:
    return hub_card(str(request.base_url).rstrip("/"))


@router.get("/system/info")
async def system_info(request: Request, hub: HubDep, settings: SettingsDep) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    topics = settings.topics
    return {
        "name": "Kolony",
        "version": kolony.__version__,
        "kafka": {
            "bootstrap_servers": settings.bootstrap_servers,
            "topics": {
                "agent_commands": topics.agent_commands,
                "agent_events": topics.agent_events,
                "task_commands": topics.task_commands,
                "task_events": topics.task_events,
                "agent_inbox": topics.agent_inbox,
                "system": topics.system,
            },
            "partitions": settings.partitions,
            "inbox_partitions": settings.inbox_partitions,
        },
        "health": {
            "agents_count": len(hub.directory.agents()),
            "workers": len(hub.live_workers()),
        },
        "endpoints": {
            "base_url": base,
            "docs": f"{base}/docs",
            "agent_card": f"{base}/.well-known/agent",
        },
    }
