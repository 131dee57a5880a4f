"""The hub bridge's six tools (the seeds' names): the hub's status, discovering agents,
delegating a task and waiting for its result, broadcasting, and listing recent tasks."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from core.queries import TaskFilter, capabilities_of
from schemas.requests import CreateTask, SendMessageRequest
from schemas.tasks import StateInput, is_terminal
from services.mcp.common import (
    AgentId,
    Capability,
    Limit,
    PageToken,
    Text,
    Title,
    Tools,
    text_of,
)
from services.status import summary
from services.usecases import messages, registry, tasks


def register(tools: Tools) -> None:
    hub = tools.hub

    async def tool_hub_status() -> dict[str, Any]:
        """How the hub is: agents, tasks, apps and stream workers ("ok" as GET /health)."""
        return summary(hub)

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
        title: Title | None = None,
    ) -> dict[str, Any]:
        """Delegate work to an agent by id, or to whichever online agent has a capability.
        Follow it with get_task_result."""
        if (capability is None) == (agent_id is None):
            raise ValueError("give exactly one of capability or agent_id")
        new = CreateTask(
            title=title,
            description=description,
            initial_message=description,
            capability=capability,
            assignee_id=agent_id,
            input=input,
            requester_id=tools.caller(ctx),
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
            "message": text_of(record.status.message) if record.status.message else None,
            "artifacts": [a.model_dump(mode="json", exclude_none=True) for a in record.artifacts],
        }

    async def tool_broadcast_message(
        ctx: Context, content: Text, capability: Capability | None = None
    ) -> dict[str, Any]:
        """Send a message to every online agent (or those with a capability)."""
        request = SendMessageRequest(
            sender_id=tools.caller(ctx), broadcast=True, capability=capability, content=content
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

    tools.add(tool_hub_status, read_only=True)
    tools.add(tool_discover_agents, read_only=True)
    tools.add(tool_delegate_task)
    tools.add(tool_get_task_result, read_only=True)
    tools.add(tool_broadcast_message)
    tools.add(tool_list_tasks, read_only=True)
