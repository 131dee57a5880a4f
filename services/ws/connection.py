"""One WebSocket connection of the any-language protocol (frames in :mod:`schemas.ws`).

Each connection reads frames one at a time, in order (so an agent's sends keep their
order), answers each with one ``ack`` or ``error`` frame, and pushes the bound agent's
deliveries as the gateway folds them. A malformed frame gets an ``error`` frame; the
connection stays up. A client too slow to take its pushes is disconnected (code 1013);
its unread messages are pushed again when it comes back. A client that sends requests
and leaves the answers unread is not read from until it takes them (see ``Connection``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError

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
from services.hub import Hub
from services.pushes import Presence
from services.refusals import REFUSALS, refusal
from services.usecases import registry
from services.ws.handlers import HANDLERS

logger = logging.getLogger(__name__)

OVERFLOW = 1013  # "try again later"


class Connection:
    """One client's socket. What it may cost the gateway is bounded: one request in flight
    (requests are answered in order), and at most ``ws_send_buffer`` frames and
    ``ws_send_buffer_bytes`` bytes waiting to be sent. Past half those bytes the connection
    stops reading requests until the client takes its answers (so a client that asks and
    never reads holds no more than that, and TCP pushes back on it); pushes that would go
    past the limits disconnect it with 1013 instead."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.hub: Hub = websocket.app.state.hub
        settings = websocket.app.state.settings
        self.max_frames: int = settings.ws_send_buffer
        self.max_bytes: int = settings.ws_send_buffer_bytes
        self.outgoing: collections.deque[bytes | None] = collections.deque()
        self.queued_bytes = 0
        self._ready = asyncio.Event()  # set: outgoing holds something for the writer
        self._room = asyncio.Event()  # set: few enough bytes queued to read another request
        self._room.set()
        self.agent_id: str | None = None
        self.overflowed = False
        self.writing = True  # False once the writer stopped: nothing more can be answered
        # While a bound agent's unread messages are streamed (as the client takes them),
        # new pushes wait here, behind them.
        self._held: collections.deque[ServerFrame] | None = None
        self._backlog: asyncio.Task[None] | None = None

    async def run(self, agent_id: str | None) -> None:
        await self.websocket.accept()
        writer = asyncio.create_task(self._write(), name="kolony-ws-writer")
        self.hub.pushes.join(self)
        try:
            self.send(Hello(agent_id=agent_id))
            if agent_id is not None:
                try:
                    self.bind(agent_id)
                except REFUSALS as exc:
                    refused = refusal(exc)
                    frame = ErrorFrame(request="connect", code=refused.code, detail=refused.detail)
                    self.send(frame)
            await self._read()
        except WebSocketDisconnect:
            pass
        finally:
            self.hub.pushes.detach(self, self.agent_id)
            tasks = [task for task in (writer, self._backlog) if task is not None]
            for task in tasks:
                task.cancel()
            # A writer that stopped on a failed send (the client vanished) has nothing more
            # to say: its error is the disconnect itself.
            await asyncio.gather(*tasks, return_exceptions=True)

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
            backlog = [
                MessageReceived(delivery_id=f"{stored.event_id}:{agent_id}", message=stored.record)
                for stored in self.hub.messages.mailbox(agent_id, unread_only=True)
            ]
            self.hub.pushes.attach(agent_id, self)
            if self._backlog is not None:
                self._backlog.cancel()
            if backlog or self._held is not None:  # (a cancelled stream's held pushes too)
                self._held = self._held if self._held is not None else collections.deque()
                self._backlog = asyncio.create_task(self._stream(backlog), name="kolony-ws-backlog")
        return agent

    async def _stream(self, backlog: list[MessageReceived]) -> None:
        """The unread messages, as fast as the client takes them, then what was pushed
        meanwhile; then pushes go straight out again."""
        for frame in backlog:
            await self._room.wait()
            self._queue(SERVER_FRAME.dump_json(frame, exclude_none=True))
        held = self._held
        while held:
            await self._room.wait()
            self._queue(SERVER_FRAME.dump_json(held.popleft(), exclude_none=True))
        self._held = None

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
        """Queue a push: past the limits, the client is too far behind and is disconnected."""
        if self._held is not None:
            if len(self._held) >= self.max_frames:
                self._overflow()
            else:
                self._held.append(frame)
            return
        data = SERVER_FRAME.dump_json(frame, exclude_none=True)
        if len(self.outgoing) >= self.max_frames or self.queued_bytes + len(data) > self.max_bytes:
            self._overflow()
            return
        self._queue(data)

    def answer(self, frame: ServerFrame | bytes) -> None:
        """Queue the answer to a request: always (the reader waits for room before the next)."""
        self._queue(
            frame if isinstance(frame, bytes) else SERVER_FRAME.dump_json(frame, exclude_none=True)
        )

    def _queue(self, data: bytes) -> None:
        if self.overflowed:
            return
        self.outgoing.append(data)
        self.queued_bytes += len(data)
        if self.queued_bytes > self.max_bytes // 2:
            self._room.clear()
        self._ready.set()

    def _overflow(self) -> None:
        if self.overflowed:
            return
        self.overflowed = True
        logger.warning(
            "websocket of %s fell behind (%d frames, %d bytes unsent); disconnecting",
            self.agent_id,
            len(self.outgoing),
            self.queued_bytes,
        )
        self.outgoing.clear()
        self.queued_bytes = 0
        self.outgoing.append(None)  # the writer closes the socket
        self._ready.set()
        self._room.set()  # the reader must not wait for room that never comes

    async def _write(self) -> None:
        try:
            while True:
                await self._ready.wait()
                if not self.outgoing:
                    self._ready.clear()
                    continue
                data = self.outgoing.popleft()
                if data is None:
                    await self.websocket.close(OVERFLOW, "too far behind; reconnect")
                    return
                await self.websocket.send_text(data.decode())
                self.queued_bytes -= len(data)
                if self.queued_bytes <= self.max_bytes // 2:
                    self._room.set()
        finally:
            # Closed, or the client is gone (a send failed): the reader stops waiting.
            self.writing = False
            self._room.set()

    # requests

    async def _read(self) -> None:
        while True:
            # Back-pressure: no next request while the client leaves its answers unread.
            await self._room.wait()
            if self.overflowed or not self.writing:
                return
            received = await self.websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            raw = received.get("text")
            if raw is None:
                raw = (received.get("bytes") or b"").decode("utf-8", errors="replace")
            started = time.perf_counter()
            await self.handle(raw)
            # A request answered from memory never waits, so a flood of them would hold the
            # event loop: after each, pause as long as it ran. One connection then gets at
            # most half the loop; other clients, /health and (in `kolony up`) the worker
            # share the rest.
            await asyncio.sleep(time.perf_counter() - started)

    async def handle(self, raw: str) -> None:
        try:
            check_json(raw)
            parsed = json.loads(raw)
        except (TooDeep, TooLarge) as exc:
            self.answer(ErrorFrame(code="invalid", detail=f"frame refused: {exc}"))
            return
        except json.JSONDecodeError as exc:
            self.answer(ErrorFrame(code="invalid", detail=f"not JSON: {exc}"))
            return
        request_id, request_type = _peek(parsed)
        try:
            frame = CLIENT_FRAME.validate_python(parsed)
        except ValidationError as exc:
            self.answer(
                ErrorFrame(
                    id=request_id, request=request_type, code="invalid", detail=describe(exc)
                )
            )
            return
        self.answer(await self._answer(frame))

    async def _answer(self, frame: ClientFrame) -> bytes | ErrorFrame:
        def refuse(code: str, detail: str, version: int | None = None) -> ErrorFrame:
            return ErrorFrame(
                id=frame.id, request=frame.type, code=code, detail=detail, current_version=version
            )

        handler: Callable[[Connection, Any], Awaitable[Any]] = HANDLERS[frame.type]
        try:
            with chosen_command_id(frame.command_id):
                data = await handler(self, frame)
        except REFUSALS as exc:
            refused = refusal(exc)
            return refuse(refused.code, refused.detail, refused.current_version)
        # An AckFrame, serialized in one pass (its data holds models: a discover answer
        # of 50 agents costs a third of what validating and dumping the frame would).
        ack = {"type": "ack", "id": frame.id, "request": frame.type, "data": data}
        return pydantic_core.to_json(ack, exclude_none=True, by_alias=False)


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
