"""Thronglets' task tools: create, read, list, report on and cancel tasks."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from core.queries import TaskFilter
from schemas.a2a import TaskState
from schemas.requests import CreateTask
from schemas.tasks import Priority, StateInput
from services.mcp.common import (
    AgentId,
    Capability,
    Limit,
    PageToken,
    Reason,
    Text,
    Title,
    Tools,
    dump,
)
from services.usecases import tasks


def register(tools: Tools) -> None:
    hub = tools.hub

    async def tool_task__create(
        ctx: Context,
        description: Text | None = None,
        title: Title | None = None,
        assignee_id: AgentId | None = None,
        capability: Capability | None = None,
        context_id: AgentId | None = None,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> dict[str, Any]:
        """Create a task, for an agent (assignee_id), a capability, or to be picked up later.
        You are its requester."""
        new = CreateTask(
            title=title,
            description=description,
            initial_message=description,
            assignee_id=assignee_id,
            capability=capability,
            context_id=context_id,
            input=input,
            metadata=metadata,
            priority=priority,
            requester_id=tools.caller(ctx),
        )
        return dump(await tasks.create_task(hub, new, issued_by="mcp"))

    async def tool_task__get(
        task_id: AgentId, history_length: Annotated[int, Field(ge=0, le=10_000)] | None = None
    ) -> dict[str, Any]:
        """A task: its state, history, artifacts and result."""
        return dump(tasks.get_task(hub, task_id, history_length=history_length))

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
            "tasks": [dump(t) for t in page.tasks],
            "next_page_token": page.next_page_token,
            "total_size": page.total_size,
        }

    async def tool_task__update_status(
        ctx: Context,
        task_id: AgentId,
        status: StateInput,
        message: Text | None = None,
        result: Any = None,
        reason: Reason | None = None,
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
            agent_id=tools.caller(ctx, agent_id),
            issued_by="mcp",
        )
        return dump(record)

    async def tool_task__cancel(
        ctx: Context, task_id: AgentId, reason: Reason | None = None
    ) -> dict[str, Any]:
        """Cancel a task that has not finished."""
        record = await tasks.cancel_task(
            hub, task_id, reason=reason, agent_id=tools.caller(ctx), issued_by="mcp"
        )
        return dump(record)

    tools.add(tool_task__create)
    tools.add(tool_task__get, read_only=True)
    tools.add(tool_task__list, read_only=True)
    tools.add(tool_task__update_status)
    tools.add(tool_task__cancel)
