"""Thronglets' agent tools: who is in the network, and who am I."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from services.mcp.common import Capability, Limit, PageToken, Tools, dump
from services.usecases import registry


def register(tools: Tools) -> None:
    hub = tools.hub

    async def tool_agent__list(
        capability: Capability | None = None,
        include_offline: bool = False,
        page_size: Limit = registry.AGENT_PAGE,
        page_token: PageToken | None = None,
    ) -> dict[str, Any]:
        """List the agents in the network (online ones unless include_offline), optionally
        only those with a capability; a page at a time (next_page_token asks for the next)."""
        page = registry.list_agents(
            hub,
            capability=capability,
            present=not include_offline,
            page_size=page_size,
            page_token=page_token,
        )
        return {
            "agents": [dump(a) for a in page.agents],
            "next_page_token": page.next_page_token,
            "total": page.total,
        }

    async def tool_agent__whoami(ctx: Context) -> dict[str, Any]:
        """The agent this MCP connection acts for."""
        return dump(registry.get_agent(hub, tools.me(ctx)))

    tools.add(tool_agent__list, read_only=True)
    tools.add(tool_agent__whoami, read_only=True)
