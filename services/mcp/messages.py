"""Thronglets' message tools: send a message, receive your unread ones."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from schemas.requests import SendMessageRequest
from services.mcp.common import AgentId, Limit, Text, Tools, dump, text_of
from services.usecases import messages


def register(tools: Tools) -> None:
    hub = tools.hub

    async def tool_message__send(
        ctx: Context,
        to_agent_id: AgentId,
        content: Text,
        task_id: AgentId | None = None,
        agent_id: AgentId | None = None,
    ) -> dict[str, Any]:
        """Send a text message to another agent (optionally in a task's thread)."""
        request = SendMessageRequest(
            sender_id=tools.me(ctx, agent_id), to=to_agent_id, content=content, task_id=task_id
        )
        return dump(await messages.send_message(hub, request, issued_by="mcp"))

    async def tool_message__receive(
        ctx: Context, limit: Limit = 100, agent_id: AgentId | None = None
    ) -> dict[str, Any]:
        """Your unread messages, oldest first; they are marked read."""
        received = await messages.receive(hub, tools.me(ctx, agent_id), limit=limit)
        return {
            "messages": [
                {
                    "message_id": m.record.message_id,
                    "from_agent_id": m.record.sender_id,
                    "content": text_of(m.record.message),
                    "task_id": m.record.task_id,
                    "sent_at": m.record.sent_at.isoformat(),
                    "message": m.record.message.model_dump(mode="json", exclude_none=True),
                }
                for m in received
            ],
            "total": len(received),
        }

    tools.add(tool_message__send)
    tools.add(tool_message__receive)
