"""The front page, health, the hub's own AgentCard, and system information."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

import kolony
from schemas.a2a import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from services import status
from services.gateway.deps import HubDep, SettingsDep
from services.gateway.errors import READ_ERRORS

router = APIRouter(tags=["system"], responses=READ_ERRORS)


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


_HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kolony</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; }}
code {{ background: #f3f3f3; padding: 0 .25rem; }}
.ok {{ color: #176f2c; }} .degraded {{ color: #a3261c; }}
</style></head>
<body>
<h1>Kolony <small>{version}</small></h1>
<p>A Kafka-native control plane for AI agent networks.
Status: <b class="{status}">{status}</b>: {agents} agent(s) online, {workers} stream worker(s),
Kafka at <code>{bootstrap}</code>.</p>
<h2>Look around</h2>
<ul>
<li><a href="docs">API documentation</a> (Swagger UI), <a href="redoc">ReDoc</a>,
    <a href="openapi.json">the OpenAPI document</a></li>
<li><a href="health">Health</a> and <a href="system/info">system information</a>
    (where Kafka is, the topics, the endpoints)</li>
<li><a href="agents">Agents</a>, <a href="tasks">tasks</a>, <a href="apps">MCP apps</a>,
    <a href="events?limit=50">recent events</a></li>
<li><a href=".well-known/agent-card.json">The hub's agent card</a></li>
</ul>
<h2>Connect</h2>
<ul>
<li>MCP (streamable HTTP): <code>{base}/bus/mcp?agent_id=&lt;your agent id&gt;</code></li>
<li>WebSocket (JSON frames, any language): <code>{ws}/ws</code></li>
<li>Kafka (plain clients, any language): <code>{bootstrap}</code>, topics
    <code>{prefix}.*</code></li>
</ul>
</body></html>
"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request, hub: HubDep, settings: SettingsDep) -> HTMLResponse:
    """A small page that says what this is and where to go."""
    base = str(request.base_url).rstrip("/")
    online = sum(1 for agent in hub.directory.agents() if agent.status != "offline")
    page = _HOME.format(
        version=escape(kolony.__version__),
        status=status.status_word(hub),
        agents=online,
        workers=len(hub.live_workers()),
        bootstrap=escape(str(settings.bootstrap_servers)),
        base=escape(base),
        ws=escape(base.replace("http", "ws", 1)),
        prefix=escape(settings.topic_prefix),
    )
    return HTMLResponse(page)


HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}


@router.get(
    "/health",
    responses={
        200: {"description": "ready", "content": {"application/json": {"schema": HEALTH}}},
        503: {
            "description": "not ready (status: degraded): the same body says what is missing",
            "content": {"application/json": {"schema": HEALTH}},
        },
    },
)
async def health(hub: HubDep) -> JSONResponse:
    """Ready when Kafka answers, the event log is folded and a stream worker is alive."""
    body = status.health(hub)
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get("/.well-known/agent", response_model=AgentCard, response_model_exclude_none=True)
@router.get(
    "/.well-known/agent-card.json", response_model=AgentCard, response_model_exclude_none=True
)
async def well_known_card(request: Request) -> AgentCard:
    return hub_card(str(request.base_url).rstrip("/"))


@router.get("/system/info")
async def system_info(request: Request, hub: HubDep, settings: SettingsDep) -> dict[str, Any]:
    """Where everything is: Kafka (for agents that join over plain Kafka), the topics, and
    the gateway's endpoints (described in docs/protocol.md, "Finding the hub")."""
    base = str(request.base_url).rstrip("/")
    return {
        "name": "Kolony",
        "version": kolony.__version__,
        "kafka": {
            "bootstrap_servers": settings.bootstrap_servers,
            "security_protocol": settings.security_protocol,
            "sasl_mechanism": settings.sasl_mechanism,
            "topic_prefix": settings.topic_prefix,
            "topics": settings.topics.public(),
            "partitions": settings.partitions,
            "inbox_partitions": settings.inbox_partitions,
        },
        "health": {
            "status": status.status_word(hub),
            "agents_count": len(hub.directory.agents()),
            "workers": len(hub.live_workers()),
        },
        "endpoints": {
            "base_url": base,
            "docs": f"{base}/docs",
            "redoc": f"{base}/redoc",
            "openapi": f"{base}/openapi.json",
            "health": f"{base}/health",
            "agent_card": f"{base}/.well-known/agent-card.json",
            "events": f"{base}/events",
            "mcp": f"{base}/bus/mcp",
            "websocket": f"{base.replace('http', 'ws', 1)}/ws",
        },
    }
