"""Thronglets' app tools: the registered MCP apps, their tools, and calling one through the
hub in the caller's own session with the app."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from schemas.apps import App
from services.mcp.common import AGENT_META_KEY, AgentId, Title, Tools, dump
from services.usecases import apps, registry


def app_summary(app: App, *, with_tools: bool = False) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "app_id": app.app_id,
        "name": app.name,
        "description": app.description,
        "scenario": app.scenario,
        "healthy": app.healthy,
        "tools_count": len(app.tools),
    }
    if with_tools:
        summary["tools"] = [{"name": t.name, "description": t.description} for t in app.tools]
    return summary


def register(tools: Tools) -> None:
    hub = tools.hub

    async def tool_app__list(
        healthy_only: bool = True, scenario: str | None = None, include_tools: bool = False
    ) -> dict[str, Any]:
        """List registered MCP apps with their tool counts (and tool names, if asked)."""
        found = apps.list_apps(hub, healthy_only=healthy_only, scenario=scenario)
        return {
            "apps": [app_summary(a, with_tools=include_tools) for a in found],
            "total": len(found),
        }

    async def tool_app__get(app_id: AgentId) -> dict[str, Any]:
        """An app's details, MCP endpoint and health."""
        return dump(apps.get_app(hub, app_id))

    async def tool_app__list_tools(app_id: AgentId) -> dict[str, Any]:
        """The tools an app serves, with their input schemas."""
        served = apps.app_tools(hub, app_id)
        return {
            "app_id": app_id,
            "tools": [
                {"name": t.name, "description": t.description, "inputSchema": t.input_schema}
                for t in served
            ],
        }

    async def tool_app__execute(
        ctx: Context,
        app_id: AgentId,
        tool_name: Title,
        arguments: dict[str, Any] | None = None,
    ) -> CallToolResult:
        """Call a tool of a registered app through the hub, in your own session with it.
        The app's answer comes back as is; its errors are tool errors."""
        who = tools.caller(ctx)
        if who is not None:
            registry.get_agent(hub, who)
        meta: dict[str, Any] = dict(ctx.request_context.meta or {})
        passed = {
            k: v
            for k, v in meta.items()
            if not k.startswith("io.modelcontextprotocol/") and k != AGENT_META_KEY
        }
        execution = await apps.execute(
            hub, app_id, tool_name, arguments or {}, agent_id=who, metadata=passed or None
        )
        return execution.result

    tools.add(tool_app__list, read_only=True)
    tools.add(tool_app__get, read_only=True)
    tools.add(tool_app__list_tools, read_only=True)
    tools.add(tool_app__execute)
