"""The hub as an MCP server: Thronglets' 13 bus tools and the hub bridge's 6.

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

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

import kolony
from core.queries import TaskFilter, capabilities_of
from schemas.a2a import TaskState
from schemas.apps import App
from schemas.base import ENTITY_ID_PATTERN
from schemas.registry import AgentStatus
from schemas.requests import SendMessageRequest
from schemas.tasks import Priority, StateInput, is_terminal
from services import apps, messages, registry, tasks
from services.hub import Hub
from services.refusals import REFUSALS, refusal

AGENT_META_KEY = "kolony/agent_id"
AGENT_HEADER = "x-kolony-agent-id"

P = ParamSpec("P")
R = TypeVar("R")

AgentId = Annotated[str, Field(min_length=1, max_length=128, pattern=ENTITY_ID_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=100_000)]
Capability = Annotated[str, Field(min_length=1, max_length=200)]
Limit = Annotated[int, Field(ge=1, le=1_000)]
PageToken = Annotated[str, Field(max_length=200)]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _dump(model: BaseModel) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return dumped


def _reported(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn the services' refusals into tool errors: ``"<code>: <detail>"``."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except REFUSALS as exc:
            raise ToolError(refusal(exc).tool_error) from exc

    return tool


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


def build_server(hub: Hub, *, agent_id: str | None = None) -> MCPServer:
    """An MCP server over ``hub``; ``agent_id`` is who calls when a request does not say."""
    server = MCPServer(
        "kolony",
        title="Kolony",
        log_level="WARNING",
        version=kolony.__version__,
        instructions=(
            "Kolony is the control plane of an agent network. Find agents by capability, "
            "send them messages, delegate tasks and read their results, and call tools of "
            "registered MCP apps through app__execute. Tools acting for an agent use the "
            "agent this connection identifies (X-Kolony-Agent-Id or ?agent_id=)."
        ),
    )

    def caller(ctx: Context, given: str | None = None) -> str | None:
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
        return agent_id

    def me(ctx: Context, given: str | None = None) -> str:
        who = caller(ctx, given)
        if who is None:
            raise ValueError(
                "this tool acts for an agent, and this connection names none: pass agent_id, "
                "or connect with the X-Kolony-Agent-Id header or ?agent_id= on the URL"
            )
        registry.get_agent(hub, who)
        return who

    def add(fn: Callable[..., Awaitable[Any]], *, read_only: bool = False) -> None:
        name = fn.__name__.removeprefix("tool_")
        server.add_tool(_reported(fn), name=name, annotations=READ_ONLY if read_only else None)

    # Thronglets' bus tools

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
            "agents": [_dump(a) for a in page.agents],
            "next_page_token": page.next_page_token,
            "total": page.total,
        }

    async def tool_agent__whoami(ctx: Context) -> dict[str, Any]:
        """The agent this MCP connection acts for."""
        return _dump(registry.get_agent(hub, me(ctx)))

    async def tool_message__send(
        ctx: Context,
        to_agent_id: AgentId,
        content: Text,
        task_id: AgentId | None = None,
        agent_id: AgentId | None = None,
    ) -> dict[str, Any]:
        """Send a text message to another agent (optionally in a task's thread)."""
        request = SendMessageRequest(
            sender_id=me(ctx, agent_id), to=to_agent_id, content=content, task_id=task_id
        )
        return _dump(await messages.send_message(hub, request, issued_by="mcp"))

    async def tool_message__receive(
        ctx: Context, limit: Limit = 100, agent_id: AgentId | None = None
    ) -> dict[str, Any]:
        """Your unread messages, oldest first; they are marked read."""
        received = await messages.receive(hub, me(ctx, agent_id), limit=limit)
        return {
            "messages": [
                {
                    "message_id": m.record.message_id,
                    "from_agent_id": m.record.sender_id,
                    "content": _text_of(m.record.message),
                    "task_id": m.record.task_id,
                    "sent_at": m.record.sent_at.isoformat(),
                    "message": m.record.message.model_dump(mode="json", exclude_none=True),
                }
                for m in received
            ],
            "total": len(received),
        }

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
        return _dump(apps.get_app(hub, app_id))

    async def tool_app__list_tools(app_id: AgentId) -> dict[str, Any]:
        """The tools an app serves, with their input schemas."""
        tools = apps.app_tools(hub, app_id)
        return {
            "app_id": app_id,
            "tools": [
                {"name": t.name, "description": t.description, "inputSchema": t.input_schema}
                for t in tools
            ],
        }

    async def tool_app__execute(
        ctx: Context,
        app_id: AgentId,
        tool_name: Annotated[str, Field(min_length=1, max_length=200)],
        arguments: dict[str, Any] | None = None,
    ) -> CallToolResult:
        """Call a tool of a registered app through the hub, in your own session with it.
        The app's answer comes back as is; its errors are tool errors."""
        who = caller(ctx)
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

    async def tool_task__create(
        ctx: Context,
        description: Text | None = None,
        title: Annotated[str, Field(min_length=1, max_length=200)] | None = None,
        assignee_id: AgentId | None = None,
        capability: Capability | None = None,
        context_id: AgentId | None = None,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> dict[str, Any]:
        """Create a task, for an agent (assignee_id), a capability, or to be picked up later.
        You are its requester."""
        new = tasks.NewTask(
            title=title,
            description=description,
            initial_message=description,
            assignee_id=assignee_id,
            capability=capability,
            context_id=context_id,
            input=input,
            metadata=metadata,
            priority=priority,
            requester_id=caller(ctx),
        )
        return _dump(await tasks.create_task(hub, new, issued_by="mcp"))

    async def tool_task__get(
        task_id: AgentId, history_length: Annotated[int, Field(ge=0, le=10_000)] | None = None
    ) -> dict[str, Any]:
        """A task: its state, history, artifacts and result."""
        return _dump(tasks.get_task(hub, task_id, history_length=history_length))

    async def tool_task__list(
        context_id: AgentId | None = None,
        status: list[StateInput] | None = None,
        assignee_id: AgentId | None = None,
        requester_id: AgentId | None = None,
        capability: Capability | None = None,
        page_size: Limit = 50,
        page_token: PageToken | None = None,
    ) -> dict[str, Any]:
        """Tasks, newest first, filtered by context, states, assignee, requester or capability."""
        where = TaskFilter(
            context_id=context_id,
            states=frozenset(status or ()),
            assignee_id=assignee_id,
            requester_id=requester_id,
            capability=capability,
        )
        page = tasks.list_tasks(hub, where, page_size=page_size, page_token=page_token)
        return {
            "tasks": [_dump(t) for t in page.tasks],
            "next_page_token": page.next_page_token,
            "total_size": page.total_size,
        }

    async def tool_task__update_status(
        ctx: Context,
        task_id: AgentId,
        status: StateInput,
        message: Text | None = None,
        result: Any = None,
        reason: Annotated[str, Field(max_length=1_000)] | None = None,
        agent_id: AgentId | None = None,
    ) -> dict[str, Any]:
        """Report a task's progress or outcome: working, input_required, completed, failed…"""
        record = await tasks.update_status(
            hub,
            task_id,
            TaskState(status),
            message=message,
            result=result,
            reason=reason,
            agent_id=caller(ctx, agent_id),
            issued_by="mcp",
        )
        return _dump(record)

    async def tool_task__cancel(
        ctx: Context,
        task_id: AgentId,
        reason: Annotated[str, Field(max_length=1_000)] | None = None,
    ) -> dict[str, Any]:
        """Cancel a task that has not finished."""
        record = await tasks.cancel_task(
            hub, task_id, reason=reason, agent_id=caller(ctx), issued_by="mcp"
        )
        return _dump(record)

    # the hub bridge's tools

    async def tool_hub_status() -> dict[str, Any]:
        """How the hub is: agents, tasks, apps and stream workers."""
        agents = hub.directory.agents()
        all_tasks = hub.board.tasks()
        registered = hub.apps.apps()
        return {
            "status": "ok" if hub.ready() else "degraded",
            "time": datetime.now(UTC).isoformat(),
            "agents": {
                "total": len(agents),
                "online": sum(1 for a in agents if a.status is not AgentStatus.OFFLINE),
            },
            "tasks": {
                "total": len(all_tasks),
                "open": sum(1 for t in all_tasks if not is_terminal(t.status.state)),
            },
            "apps": {"total": len(registered), "healthy": sum(a.healthy for a in registered)},
            "workers": len(hub.live_workers()),
            "caught_up": hub.caught_up,
        }

    async def tool_discover_agents(
        capability: Capability | None = None,
        page_size: Limit = registry.AGENT_PAGE,
        page_token: PageToken | None = None,
    ) -> dict[str, Any]:
        """Agents that are online, with a capability (all of them without one); a page at a
        time (next_page_token asks for the next)."""
        page = registry.list_agents(
            hub, capability=capability, present=True, page_size=page_size, page_token=page_token
        )
        return {
            "agents": [
                {
                    "agent_id": a.agent_id,
                    "name": a.card.name,
                    "description": a.card.description,
                    "capabilities": sorted(capabilities_of(a)),
                    "status": a.status.value,
                }
                for a in page.agents
            ],
            "next_page_token": page.next_page_token,
            "total": page.total,
        }

    async def tool_delegate_task(
        ctx: Context,
        description: Text,
        capability: Capability | None = None,
        agent_id: AgentId | None = None,
        input: Any = None,
        title: Annotated[str, Field(min_length=1, max_length=200)] | None = None,
    ) -> dict[str, Any]:
        """Delegate work to an agent by id, or to whichever online agent has a capability.
        Follow it with get_task_result."""
        if (capability is None) == (agent_id is None):
            raise ValueError("give exactly one of capability or agent_id")
        new = tasks.NewTask(
            title=title,
            description=description,
            initial_message=description,
            capability=capability,
            assignee_id=agent_id,
            input=input,
            requester_id=caller(ctx),
        )
        record = await tasks.create_task(hub, new, issued_by="mcp")
        return {
            "task_id": record.id,
            "status": record.status.state.value,
            "assignee_id": record.assignee_id,
        }

    async def tool_get_task_result(
        task_id: AgentId, wait_seconds: Annotated[float, Field(ge=0, le=300)] = 0
    ) -> dict[str, Any]:
        """A task's state and, once finished, its result; waits up to wait_seconds for it
        to finish."""
        record = tasks.get_task(hub, task_id)
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while not is_terminal(record.status.state) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            record = tasks.get_task(hub, task_id)
        return {
            "task_id": record.id,
            "status": record.status.state.value,
            "finished": is_terminal(record.status.state),
            "result": record.result,
            "message": _text_of(record.status.message) if record.status.message else None,
            "artifacts": [a.model_dump(mode="json", exclude_none=True) for a in record.artifacts],
        }

    async def tool_broadcast_message(
        ctx: Context, content: Text, capability: Capability | None = None
    ) -> dict[str, Any]:
        """Send a message to every online agent (or those with a capability)."""
        request = SendMessageRequest(
            sender_id=caller(ctx), broadcast=True, capability=capability, content=content
        )
        view = await messages.send_message(hub, request, issued_by="mcp")
        return {"message_id": view.record.message_id, "recipients": len(view.recipients)}

    async def tool_list_tasks(
        status: list[StateInput] | None = None, limit: Limit = 50
    ) -> dict[str, Any]:
        """Recent tasks, newest first, optionally in some states only."""
        page = tasks.list_tasks(hub, TaskFilter(states=frozenset(status or ())), page_size=limit)
        return {
            "tasks": [
                {
                    "task_id": t.id,
                    "title": t.title,
                    "status": t.status.state.value,
                    "assignee_id": t.assignee_id,
                    "requester_id": t.requester_id,
                    "capability": t.capability,
                }
                for t in page.tasks
            ],
            "total_size": page.total_size,
        }

    for fn, read_only in (
        (tool_agent__list, True),
        (tool_agent__whoami, True),
        (tool_message__send, False),
        (tool_message__receive, False),
        (tool_app__list, True),
        (tool_app__get, True),
        (tool_app__list_tools, True),
        (tool_app__execute, False),
        (tool_task__create, False),
        (tool_task__get, True),
        (tool_task__list, True),
        (tool_task__update_status, False),
        (tool_task__cancel, False),
        (tool_hub_status, True),
        (tool_discover_agents, True),
        (tool_delegate_task, False),
        (tool_get_task_result, True),
        (tool_broadcast_message, False),
        (tool_list_tasks, True),
    ):
        add(fn, read_only=read_only)
    return server


def _text_of(message: Any) -> str:
    return "".join(p.text for p in message.parts if getattr(p, "text", None))
