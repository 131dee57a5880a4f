"""A stateful MCP app for Kolony: a notebook per session.

Each MCP session gets its own notebook, so two agents calling ``note_add`` through the
hub's proxy never see each other's notes (each agent has its own session with the app).
``whoami`` answers with the context the hub passed on: the calling agent, its session with
the app, and any metadata the caller sent.

Run it, and register it with a running hub (``kolony up``):

    .venv/bin/python examples/notebook_app.py --port 8100 --hub http://127.0.0.1:8000

Then, from any MCP client connected to the hub's ``/bus/mcp``: ``app__list``,
``app__list_tools``, and ``app__execute(app_id, "note_add", {"text": "hello"})``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from typing import Any

import httpx
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request
from starlette.responses import JSONResponse

CONTEXT_KEY = "kolony/context"  # where the hub puts the caller's context in _meta


def build_app(name: str = "notebook") -> MCPServer:
    server = MCPServer(name, instructions="A notebook per session: add, list and clear notes.")
    notebooks: dict[str, list[str]] = defaultdict(list)

    def context_of(ctx: Context) -> dict[str, Any]:
        meta = ctx.request_context.meta or {}
        found = meta.get(CONTEXT_KEY)
        return found if isinstance(found, dict) else {}

    def session_of(ctx: Context) -> str:
        """The MCP session (stateful HTTP), else the hub's session id, else one shared."""
        headers = ctx.headers or {}
        return (
            headers.get("mcp-session-id")
            or str(context_of(ctx).get("session_id") or "")
            or "anonymous"
        )

    @server.tool()
    async def note_add(text: str, ctx: Context) -> dict[str, Any]:
        """Add a note to this session's notebook."""
        if not text.strip():
            raise ToolError("a note needs some text")
        notes = notebooks[session_of(ctx)]
        notes.append(text)
        return {"count": len(notes)}

    @server.tool()
    async def note_list(ctx: Context) -> dict[str, Any]:
        """The notes of this session, oldest first."""
        return {"notes": list(notebooks[session_of(ctx)])}

    @server.tool()
    async def note_clear(ctx: Context) -> dict[str, Any]:
        """Forget this session's notes."""
        cleared = len(notebooks.pop(session_of(ctx), []))
        return {"cleared": cleared}

    @server.tool()
    async def whoami(ctx: Context) -> dict[str, Any]:
        """The caller's context as the hub passed it on."""
        headers = ctx.headers or {}
        return {
            "context": context_of(ctx),
            "agent_header": headers.get("x-kolony-agent-id"),
            "session": session_of(ctx),
        }

    @server.tool()
    async def echo(value: Any) -> Any:
        """Answer with what it was given (for measuring the proxy)."""
        return value

    @server.custom_route("/health", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "sessions": len(notebooks)})

    return server


def register(hub: str, name: str, port: int) -> dict[str, Any]:
    """Register (or update) this app with the hub; answers with the hub's record of it."""
    base = f"http://127.0.0.1:{port}"
    response = httpx.post(
        f"{hub}/apps",
        json={
            "name": name,
            "description": "A notebook per session: add, list and clear notes",
            "scenario": "productivity",
            "mcp_endpoint": f"{base}/mcp",
            "health_check_url": f"{base}/health",
        },
        timeout=30,
    )
    response.raise_for_status()
    app: dict[str, Any] = response.json()
    return app


async def serve(port: int, hub: str | None, name: str) -> None:
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(name).streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it (port in use, say)
        await asyncio.sleep(0.05)
    print(f"notebook app serving MCP at http://127.0.0.1:{port}/mcp", flush=True)
    if hub:
        app = await asyncio.to_thread(register, hub, name, port)
        print(f"registered with {hub} as app {app['app_id']}", flush=True)
    await serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument(
        "--hub", help="a Kolony gateway to register with, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument("--name", default="notebook")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.hub, args.name))


if __name__ == "__main__":
    main()
