"""``/ws``: the any-language WebSocket protocol (frames in :mod:`schemas.ws`).

Each connection reads frames one at a time, in order (so an agent's sends keep their
order), answers each with one ``ack`` or ``error`` frame, and pushes the bound agent's
deliveries as the gateway folds them. A malformed frame gets an ``error`` frame; the
connection stays up. A client too slow to take its pushes is disconnected (code 1013);
its unread messages are pushed again when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from kolony.commands import chosen_command_id
from schemas.inbox import (
    InboxItem,
    MemoryUpdatedDelivery,
    MessageDelivery,
    TaskAssignedDelivery,
    TaskUpdatedDelivery,
)
from schemas.limits import TooDeep, TooLarge, check_json, describe
from schemas.registry import RegisteredAgent
from schemas.ws import (
    CLIENT_FRAME,
    SERVER_FRAME,
    AckFrame,
    AgentJoined,
    AgentLeft,
    ClientFrame,
    ErrorFrame,
    Hello,
    MemoryUpdatedPush,
    MessageReceived,
    ServerFrame,
    TaskAssignedPush,
    TaskUpdatedPush,
)
from services import memory, messages, registry, tasks
from services.hub import Hub, HubUnavailable, Rejected
from services.pushes import Presence
from services.ws_handlers import HANDLERS, NotBound

logger = logging.getLogger(__name__)

router = APIRouter()

OVERFLOW = 1013  # "try again later"
NOT_FOUND = (
    registry.UnknownAgent,
    tasks.UnknownTask,
    messages.UnknownMessage,
    memory.UnknownKey,
)


@router.websocket("/ws")
async def agent_socket(websocket: WebSocket) -> None:
    await Connection(websocket).run(None)


@router.websocket("/ws/{agent_id}")
async def agent_socket_for(websocket: WebSocket, agent_id: str) -> None:
    """Seed 003's address: the connection is bound to ``agent_id`` (registered already)."""
    await Connection(websocket).run(agent_id)


class Connection:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.hub: Hub = websocket.app.state.hub
        buffer = websocket.app.state.settings.ws_send_buffer
        self.outgoing: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=buffer)
        self.agent_id: str | None = None
        self.overflowed = False

    async def run(self, agent_id: str | None) -> None:
        await self.websocket.accept()
        writer = asyncio.create_task(self._write(), name="kolony-ws-writer")
        self.hub.pushes.join(self)
        try:
            self.send(Hello(agent_id=agent_id))
            if agent_id is not None:
                try:
                    self.bind(agent_id)
                except NOT_FOUND as exc:
                    self.send(ErrorFrame(request="connect", code="not_found", detail=str(exc)))
            await self._read()
        except WebSocketDisconnect:
            pass
        finally:
            self.hub.pushes.detach(self, self.agent_id)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    # binding and pushes

    def bind(self, agent_id: str) -> RegisteredAgent:
        """Push ``agent_id``'s deliveries here, starting with its unread messages."""
        agent = registry.get_agent(self.hub, agent_id)
        if self.agent_id is not None and self.agent_id != agent_id:
            self.hub.pushes.detach(self, self.agent_id)
            self.hub.pushes.join(self)
        if self.agent_id != agent_id:
            self.agent_id = agent_id
            # No await between reading the backlog and attaching: nothing falls between.
            for stored in self.hub.messages.mailbox(agent_id, unread_only=True):
                delivery_id = f"{stored.event_id}:{agent_id}"
                self.send(MessageReceived(delivery_id=delivery_id, message=stored.record))
            self.hub.pushes.attach(agent_id, self)
        return agent

    def deliver(self, item: InboxItem) -> None:
        frame: ServerFrame
        match item:
            case MessageDelivery():
                frame = MessageReceived(delivery_id=item.delivery_id, message=item.record)
            case TaskAssignedDelivery():
                frame = TaskAssignedPush(
                    delivery_id=item.delivery_id, task=item.task, assignment=item.assignment
                )
            case TaskUpdatedDelivery():
                frame = TaskUpdatedPush(
                    delivery_id=item.delivery_id, role=item.role, task=item.task
                )
            case MemoryUpdatedDelivery():
                frame = MemoryUpdatedPush(
                    delivery_id=item.delivery_id,
                    key=item.key,
                    version=item.version,
                    deleted=item.deleted,
                    updated_by=item.updated_by,
                    item=item.item,
                )
        self.send(frame)

    def presence(self, change: Presence, agent_id: str, agent: RegisteredAgent | None) -> None:
        if agent_id == self.agent_id:
            return
        if change == "joined" and agent is not None:
            self.send(AgentJoined(agent=agent))
        elif change == "left":
            reason = "deregistered" if agent is None else "offline"
            self.send(AgentLeft(agent_id=agent_id, reason=reason, at=datetime.now(UTC)))

    def send(self, frame: ServerFrame) -> None:
        if self.overflowed:
            return
        try:
            self.outgoing.put_nowait(SERVER_FRAME.dump_json(frame, exclude_none=True))
        except asyncio.QueueFull:
            self.overflowed = True
            logger.warning("websocket of %s fell behind its pushes; disconnecting", self.agent_id)
            self.outgoing.get_nowait()
            self.outgoing.put_nowait(None)  # the writer closes the socket

    async def _write(self) -> None:
        while True:
            frame = await self.outgoing.get()
            if frame is None:
                await self.websocket.close(OVERFLOW, "too far behind; reconnect")
                return
            await self.websocket.send_text(frame.decode())

    # requests

    async def _read(self) -> None:
        while True:
            received = await self.websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            raw = received.get("text")
            if raw is None:
                raw = (received.get("bytes") or b"").decode("utf-8", errors="replace")
            await self.handle(raw)

    async def handle(self, raw: str) -> None:
        try:
            check_json(raw)
            parsed = json.loads(raw)
        except (TooDeep, TooLarge) as exc:
            self.send(ErrorFrame(code="invalid", detail=f"frame refused: {exc}"))
            return
        except json.JSONDecodeError as exc:
            self.send(ErrorFrame(code="invalid", detail=f"not JSON: {exc}"))
            return
        request_id, request_type = _peek(parsed)
        try:
            frame = CLIENT_FRAME.validate_python(parsed)
        except ValidationError as exc:
            self.send(
                ErrorFrame(
                    id=request_id, request=request_type, code="invalid", detail=describe(exc)
                )
            )
            return
        self.send(await self._answer(frame))

    async def _answer(self, frame: ClientFrame) -> AckFrame | ErrorFrame:
        def refuse(code: str, detail: str, version: int | None = None) -> ErrorFrame:
            return ErrorFrame(
                id=frame.id, request=frame.type, code=code, detail=detail, current_version=version
            )

        handler: Callable[[Connection, Any], Awaitable[Any]] = HANDLERS[frame.type]
        try:
            with chosen_command_id(frame.command_id):
                data = await handler(self, frame)
        except Rejected as exc:
            return refuse(exc.code, exc.reason, exc.current_version)
        except NOT_FOUND as exc:
            return refuse("not_found", str(exc))
        except memory.ReadRefused as exc:
            return refuse("forbidden", str(exc))
        except HubUnavailable as exc:
            return refuse("unavailable", str(exc))
        except NotBound as exc:
            return refuse("invalid", str(exc))
        except ValueError as exc:
            return refuse("invalid", str(exc))
        return AckFrame(id=frame.id, request=frame.type, data=_jsonable(data))


def _peek(parsed: Any) -> tuple[str | int | None, str | None]:
    """The request's id and type, if a malformed frame still has them (for the error)."""
    if not isinstance(parsed, dict):
        return None, None
    request_id = parsed.get("id")
    request_type = parsed.get("type")
    return (
        request_id
        if isinstance(request_id, str | int) and not isinstance(request_id, bool)
        else None,
        request_type if isinstance(request_type, str) else None,
    )


def _jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", exclude_none=True)
    if isinstance(data, list | tuple):
        return [_jsonable(x) for x in data]
    if isinstance(data, dict):
        return {k: _jsonable(v) for k, v in data.items()}
    return data
