"""What each WebSocket request does: the same service calls as the REST routes.

Every handler acts as the connection's agent (bound by ``agent:register``,
``agent:attach`` or the ``/ws/{agent_id}`` address); what it returns is the ``ack``'s data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from schemas.registry import RegisteredAgent
from schemas.requests import SendMessageRequest, SetMemoryRequest
from schemas.ws import (
    Ack,
    Attach,
    Deregister,
    Discover,
    Heartbeat,
    MemoryDelete,
    MemoryGet,
    MemoryList,
    MemorySet,
    MemorySubscribe,
    MemoryUnsubscribe,
    Receive,
    Register,
    Send,
    TaskAssign,
    TaskCancel,
    TaskCreate,
    TaskGet,
    TaskUpdate,
)
from services.hub import Hub
from services.refusals import NotBound
from services.usecases import memory, messages, registry, tasks


class Socket(Protocol):
    hub: Hub
    agent_id: str | None

    def bind(self, agent_id: str) -> RegisteredAgent: ...


def _me(socket: Socket) -> str:
    if socket.agent_id is None:
        raise NotBound("send agent:register or agent:attach first: this connection has no agent")
    return socket.agent_id


async def _register(socket: Socket, frame: Register) -> Any:
    agent, _ = await registry.register_agent(
        socket.hub, frame.card, ttl_seconds=frame.ttl_seconds, issued_by="websocket"
    )
    return socket.bind(agent.agent_id)


async def _attach(socket: Socket, frame: Attach) -> Any:
    return socket.bind(frame.agent_id)


async def _heartbeat(socket: Socket, frame: Heartbeat) -> Any:
    return await registry.heartbeat(
        socket.hub, _me(socket), status=frame.status, issued_by="websocket"
    )


async def _deregister(socket: Socket, frame: Deregister) -> Any:
    await registry.deregister_agent(
        socket.hub, _me(socket), reason=frame.reason, issued_by="websocket"
    )
    return {"status": "deregistered", "agent_id": socket.agent_id}


async def _discover(socket: Socket, frame: Discover) -> Any:
    page = registry.list_agents(
        socket.hub,
        capability=frame.capability,
        text=frame.text,
        page_size=frame.page_size,
        page_token=frame.page_token,
    )
    return _paged({"agents": page.agents, "total": page.total}, page.next_page_token)


async def _send(socket: Socket, frame: Send) -> Any:
    me = _me(socket)
    if frame.sender_id not in (None, me):
        raise ValueError(f"this connection sends as {me!r}, not {frame.sender_id!r}")
    fields = frame.model_dump(
        exclude={"type", "id", "command_id"}, exclude_unset=True, by_alias=False
    )
    request = SendMessageRequest.model_validate({**fields, "sender_id": me})
    return await messages.send_message(socket.hub, request, issued_by="websocket")


async def _receive(socket: Socket, frame: Receive) -> Any:
    return {"messages": await messages.receive(socket.hub, _me(socket), limit=frame.limit)}


async def _ack(socket: Socket, frame: Ack) -> Any:
    acked = await messages.ack(socket.hub, _me(socket), frame.message_ids, issued_by="websocket")
    return {"acked": acked}


async def _task_create(socket: Socket, frame: TaskCreate) -> Any:
    requester = frame.task.requester_id or _me(socket)
    new = frame.task.model_copy(update={"requester_id": requester})
    return await tasks.create_task(socket.hub, new, issued_by="websocket")


async def _task_assign(socket: Socket, frame: TaskAssign) -> Any:
    return await tasks.assign_task(socket.hub, frame.task_id, frame.agent_id, issued_by="websocket")


async def _task_update(socket: Socket, frame: TaskUpdate) -> Any:
    return await tasks.update_status(
        socket.hub,
        frame.task_id,
        frame.state,
        message=frame.message,
        artifacts=frame.artifacts,
        result=frame.result,
        reason=frame.reason,
        agent_id=_me(socket),
        issued_by="websocket",
    )


async def _task_get(socket: Socket, frame: TaskGet) -> Any:
    return tasks.get_task(socket.hub, frame.task_id)


async def _task_cancel(socket: Socket, frame: TaskCancel) -> Any:
    return await tasks.cancel_task(
        socket.hub, frame.task_id, reason=frame.reason, agent_id=_me(socket), issued_by="websocket"
    )


async def _memory_set(socket: Socket, frame: MemorySet) -> Any:
    me = _me(socket)
    if frame.agent_id not in (None, me):
        raise ValueError(f"this connection writes as {me!r}, not {frame.agent_id!r}")
    fields = frame.model_dump(exclude={"type", "id", "command_id", "key"}, exclude_unset=True)
    request = SetMemoryRequest.model_validate({**fields, "agent_id": me})
    item, _ = await memory.set_value(socket.hub, frame.key, request, issued_by="websocket")
    return item


async def _memory_get(socket: Socket, frame: MemoryGet) -> Any:
    return memory.get_value(socket.hub, frame.key, agent_id=_me(socket))


async def _memory_list(socket: Socket, frame: MemoryList) -> Any:
    page = memory.list_values(
        socket.hub,
        prefix=frame.prefix,
        agent_id=_me(socket),
        page_size=frame.page_size,
        page_token=frame.page_token,
    )
    return _paged({"items": page.items, "total": page.total}, page.next_page_token)


def _paged(answer: dict[str, Any], next_page_token: str | None) -> dict[str, Any]:
    return answer | ({"next_page_token": next_page_token} if next_page_token else {})


async def _memory_delete(socket: Socket, frame: MemoryDelete) -> Any:
    await memory.delete_value(
        socket.hub,
        frame.key,
        agent_id=_me(socket),
        expected_version=frame.expected_version,
        issued_by="websocket",
    )
    return {"status": "deleted", "key": frame.key}


async def _subscribe(socket: Socket, frame: MemorySubscribe) -> Any:
    held = await registry.subscribe(
        socket.hub, _me(socket), frame.all_patterns(), issued_by="websocket"
    )
    return {"subscriptions": list(held)}


async def _unsubscribe(socket: Socket, frame: MemoryUnsubscribe) -> Any:
    held = await registry.unsubscribe(
        socket.hub, _me(socket), frame.all_patterns(), issued_by="websocket"
    )
    return {"subscriptions": list(held)}


HANDLERS: dict[str, Callable[[Any, Any], Awaitable[Any]]] = {
    "agent:register": _register,
    "agent:attach": _attach,
    "agent:heartbeat": _heartbeat,
    "agent:deregister": _deregister,
    "agent:discover": _discover,
    "message:send": _send,
    "message:receive": _receive,
    "message:ack": _ack,
    "task:create": _task_create,
    "task:assign": _task_assign,
    "task:update": _task_update,
    "task:get": _task_get,
    "task:cancel": _task_cancel,
    "memory:set": _memory_set,
    "memory:get": _memory_get,
    "memory:list": _memory_list,
    "memory:delete": _memory_delete,
    "memory:subscribe": _subscribe,
    "memory:unsubscribe": _unsubscribe,
}
