"""The gateway application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

import kolony
from kolony.settings import Settings
from services.gateway.deps import idempotency_key
from services.gateway.errors import install_error_handlers
from services.gateway.limits import BodyLimits
from services.gateway.mcp import McpEndpoint, McpPaths
from services.gateway.routers import agents, apps, events, memory, messages, system, tasks, ws
from services.hub import Hub
from services.mcp import build_server


def create_app(settings: Settings, hub: Hub | None = None) -> FastAPI:
    """A gateway; it owns (starts and stops) its :class:`Hub` unless one is passed in."""
    owned = hub is None
    the_hub = hub if hub is not None else Hub(settings)

    mcp_server = build_server(the_hub)
    mcp_endpoint = McpEndpoint(mcp_server, settings.host)
    the_hub.on_stop(mcp_endpoint.close)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if owned:
            await the_hub.start()
        try:
            yield
        finally:
            await mcp_endpoint.close()
            if owned:
                await the_hub.stop()

    # Swagger UI and ReDoc from the package's own files: the docs work offline.
    app = FastAPIOffline(
        title="Kolony",
        version=kolony.__version__,
        description="Kafka-native control plane for AI agent networks",
        lifespan=lifespan,
        dependencies=[Depends(idempotency_key)],
    )
    app.state.hub = the_hub
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(agents.router)
    app.include_router(tasks.router)
    app.include_router(messages.router)
    app.include_router(memory.router)
    app.include_router(apps.router)
    app.include_router(events.router)
    app.include_router(ws.router)
    app.add_middleware(BodyLimits)
    # MCP over streamable HTTP at Kolony's address and Thronglets' (see services.mcp),
    # answered before FastAPI's routing: every proxied tool call passes here.
    app.add_middleware(McpPaths, endpoint=mcp_endpoint, paths=("/mcp", "/bus/mcp"))
    app.state.mcp = mcp_server
    return app
