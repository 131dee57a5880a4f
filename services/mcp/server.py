"""The hub as an MCP server: Thronglets' 13 bus tools and the hub bridge's 6, a module per
group (``agents``, ``messages``, ``apps``, ``tasks``, ``bridge``).

Every tool calls the same service functions as REST. A bad argument, an unknown id or a
refused command is a tool error (``isError`` with the reason), never a crash.

Who is calling: a tool acting for an agent (``agent__whoami``, ``message__send``,
``message__receive``, ``app__execute``…) takes the first of

1. the ``agent_id`` argument, where the tool has one;
2. ``_meta["kolony/agent_id"]`` on the request;
3. the ``X-Kolony-Agent-Id`` header, or the ``agent_id`` query parameter of the MCP URL
   (``BusClient.mcp_address`` is ``<hub>/bus/mcp?agent_id=<id>``);
4. the agent the server was started for (``kolony mcp --agent-id``).

Without one, tools that need an agent answer with an error saying so; the others act for
the operator.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

import kolony
from services.hub import Hub
from services.mcp import agents, apps, bridge, messages, tasks
from services.mcp.common import Tools

INSTRUCTIONS = (
    "Kolony is the control plane of an agent network. Find agents by capability, "
    "send them messages, delegate tasks and read their results, and call tools of "
    "registered MCP apps through app__execute. Tools acting for an agent use the "
    "agent this connection identifies (X-Kolony-Agent-Id or ?agent_id=)."
)

# In the order clients list them: Thronglets' bus tools, then the bridge's.
GROUPS = (agents, messages, apps, tasks, bridge)


def build_server(hub: Hub, *, agent_id: str | None = None) -> MCPServer:
    """An MCP server over ``hub``; ``agent_id`` is who calls when a request does not say."""
    server = MCPServer(
        "kolony",
        title="Kolony",
        log_level="WARNING",
        version=kolony.__version__,
        instructions=INSTRUCTIONS,
    )
    tools = Tools(server, hub, agent_id)
    for group in GROUPS:
        group.register(tools)
    return server
