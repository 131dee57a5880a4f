"""The MCP endpoint of the gateway: the hub's MCP server over streamable HTTP."""

from __future__ import annotations

import asyncio
import contextlib

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.types import ASGIApp, Receive, Scope, Send


class McpEndpoint:
    """An ASGI app serving ``server``; its session manager starts with the first request.

    The manager runs in a task of its own (anyio scopes must end in the task that began
    them), so the endpoint works whether or not the ASGI server runs lifespan events.
    """

    def __init__(self, server: MCPServer, host: str) -> None:
        server.streamable_http_app(host=host)  # configures the session manager
        self._manager = server.session_manager
        self._asgi = StreamableHTTPASGIApp(self._manager)
        self._started: asyncio.Future[None] | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._running()
        await self._asgi(scope, receive, send)

    async def _running(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(self._started), name="mcp-sessions")
        await asyncio.shield(self._started)

    async def _run(self, started: asyncio.Future[None]) -> None:
        try:
            async with self._manager.run():
                started.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10.0)


class McpPaths:
    """ASGI middleware: requests for ``paths`` go to the MCP endpoint, the rest on."""

    def __init__(self, app: ASGIApp, endpoint: McpEndpoint, paths: tuple[str, ...]) -> None:
        self.app = app
        self.endpoint = endpoint
        self.paths = frozenset(paths) | {f"{p}/" for p in paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
