"""What every group of MCP tools shares: who is calling, how a tool is added, the argument
types, and how the services' refusals become tool errors."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from schemas.base import EntityId
from services.hub import Hub
from services.refusals import REFUSALS, refusal
from services.usecases import registry

AGENT_META_KEY = "kolony/agent_id"
AGENT_HEADER = "x-kolony-agent-id"

P = ParamSpec("P")
R = TypeVar("R")

AgentId = EntityId
Text = Annotated[str, Field(min_length=1, max_length=100_000)]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(max_length=1_000)]
Capability = Annotated[str, Field(min_length=1, max_length=200)]
Limit = Annotated[int, Field(ge=1, le=1_000)]
PageToken = Annotated[str, Field(max_length=200)]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


@dataclass
class Tools:
    """One server's tools: the hub they act on, and who calls when a request does not say."""

    server: MCPServer
    hub: Hub
    agent_id: str | None = None

    def add(self, fn: Callable[..., Awaitable[Any]], *, read_only: bool = False) -> None:
        """Add ``fn`` as the tool named after it (``tool_`` removed)."""
        name = fn.__name__.removeprefix("tool_")
        self.server.add_tool(_reported(fn), name=name, annotations=READ_ONLY if read_only else None)

    def caller(self, ctx: Context, given: str | None = None) -> str | None:
        """Who is calling (the server module says in which order it looks), or None."""
        if given:
            return given
        request_context = ctx.request_context
        meta: dict[str, Any] = dict(request_context.meta or {})
        if isinstance(meta.get(AGENT_META_KEY), str):
            return str(meta[AGENT_META_KEY])
        request = request_context.request
        headers = getattr(request, "headers", None)
        if headers is not None and headers.get(AGENT_HEADER):
            return str(headers[AGENT_HEADER])
        query = getattr(request, "query_params", None)
        if query is not None and query.get("agent_id"):
            return str(query["agent_id"])
        return self.agent_id

    def me(self, ctx: Context, given: str | None = None) -> str:
        """The registered agent calling; an error when the connection names none."""
        who = self.caller(ctx, given)
        if who is None:
            raise ValueError(
                "this tool acts for an agent, and this connection names none: pass agent_id, "
                "or connect with the X-Kolony-Agent-Id header or ?agent_id= on the URL"
            )
        registry.get_agent(self.hub, who)
        return who


def dump(model: BaseModel) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return dumped


def text_of(message: Any) -> str:
    return "".join(p.text for p in message.parts if getattr(p, "text", None))


def _reported(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn the services' refusals into tool errors: ``"<code>: <detail>"``."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except REFUSALS as exc:
            raise ToolError(refusal(exc).tool_error) from exc

    return tool
