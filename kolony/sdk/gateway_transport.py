"""The gateway transport: for agents that cannot reach Kafka, the gateway's WebSocket.

Every request is a frame answered by exactly one ``ack`` or ``error`` frame with its ``id``
(``docs/protocol.md``, "WebSocket"); deliveries are the gateway's pushes. When the
connection drops, the transport reconnects with exponential backoff and jitter, registers
again (a renewal), and asks the gateway for the open tasks assigned to the agent, so a task
assigned while it was away is not missed. Requests that are safe to repeat (heartbeats,
task reports) wait for the new connection; others fail with :class:`BusError`, since
whether the hub applied them cannot be known.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from kolony.commands import chosen
from kolony.sdk.backoff import backoff
from kolony.sdk.errors import BusError, Rejected
from kolony.sdk.transport import Delivery, MemoryChange
from schemas.a2a import AgentCard, Message, TaskState
from schemas.memory import MemoryItem
from schemas.messages import MessageRecord, MessageType
from schemas.requests import CreateTask
from schemas.tasks import TaskRecord
from schemas.ws import SERVER_FRAME

logger = logging.getLogger(__name__)

OPEN_STATES = ("submitted", "working", "input_required")


class _ConnectionLost(Exception):
    pass


class GatewayTransport:
    def __init__(self, url: str, agent_id: str, request_timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        scheme, rest = self.url.split("://", 1)
        self.ws_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"
        self.agent_id = agent_id
        self.request_timeout = request_timeout
        self._socket: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self._registration: dict[str, Any] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None

    # the connection

    async def start(self, within: float | None) -> None:
        """Connect, retrying with backoff for ``within`` seconds (None: until it works)."""
        self._first = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._stay_connected(), name="kolony-sdk-ws")
        try:
            await asyncio.wait_for(asyncio.shield(self._first), within)
        except TimeoutError:
            await self.stop()
            raise BusError(
                f"cannot reach the gateway at {self.ws_url} within {within:g} s"
            ) from None

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close()
            self._socket = None

    async def _stay_connected(self) -> None:
        attempt = 0
        while True:
            try:
                async with connect(self.ws_url, open_timeout=10, max_size=2**24) as socket:
                    await self._session(socket)
            except asyncio.CancelledError:
                raise
            except (OSError, WebSocketException, BusError, ValueError) as exc:
                attempt += 1
                what = "lost" if self._first is not None and self._first.done() else "failed"
                logger.warning(
                    "connection to the gateway at %s %s (%s); trying again (is the hub running?)",
                    self.ws_url,
                    what,
                    exc or type(exc).__name__,
                )
            else:
                attempt = 1
            finally:
                self._connected.clear()
                self._socket = None
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(_ConnectionLost())
                self._waiting.clear()
            await asyncio.sleep(backoff(attempt))

    async def _session(self, socket: ClientConnection) -> None:
        """One connection: check the greeting, resume, then read until it closes."""
        hello = json.loads(await socket.recv())
        if hello.get("type") != "hello":
            raise BusError(f"not a Kolony gateway: {str(hello)[:200]}")
        self._socket = socket
        reader = asyncio.create_task(self._read(socket))
        try:
            await self._resume()
            self._connected.set()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            await reader
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _resume(self) -> None:
        """After a reconnection: register again, and pick up tasks assigned meanwhile."""
        if self._registration is None:
            return
        await self._call(self._registration)
        async with httpx.AsyncClient(base_url=self.url, timeout=self.request_timeout) as http:
            response = await http.get(
                "/tasks",
                params={"assignee": self.agent_id, "status": list(OPEN_STATES), "page_size": 1000},
            )
        if response.status_code != 200:
            logger.warning("could not list the agent's open tasks: %s", response.text[:200])
            return
        for raw in response.json().get("tasks", []):
            with contextlib.suppress(ValidationError):
                task = TaskRecord.model_validate(raw)
                # The agent skips a delivery id it has seen, and a task it works on now.
                await self._deliveries.put(
                    Delivery(
                        f"resumed:{task.id}:{task.updated_at.isoformat()}",
                        "task_assigned",
                        task=task,
                    )
                )

    async def _read(self, socket: ClientConnection) -> None:
        async for raw in socket:
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            kind = frame.get("type")
            if kind in ("ack", "error"):
                future = self._waiting.pop(frame.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(frame)
                continue
            try:
                push = SERVER_FRAME.validate_python(frame)
            except ValidationError:
                logger.warning("skipping an unknown frame: %s", str(frame)[:200])
                continue
            delivery = _delivery(push)
            if delivery is not None:
                await self._deliveries.put(delivery)

    async def _call(self, frame: dict[str, Any]) -> Any:
        """Send one request on the current connection and return its ``ack`` data."""
        socket = self._socket
        if socket is None:
            raise _ConnectionLost()
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await socket.send(json.dumps({**frame, "id": request_id}, default=str))
            answer = await asyncio.wait_for(future, self.request_timeout)
        except (WebSocketException, OSError):
            raise _ConnectionLost() from None
        except TimeoutError:
            raise BusError(
                f"no answer to {frame['type']} within {self.request_timeout:g} s"
            ) from None
        finally:
            self._waiting.pop(request_id, None)
        if answer["type"] == "error":
            if answer.get("code") == "unavailable":
                raise BusError(f"{frame['type']}: {answer.get('detail')}")
            raise Rejected(
                answer.get("code", "invalid"),
                answer.get("detail", ""),
                what=frame["type"],
                current_version=answer.get("current_version"),
            )
        return answer.get("data")

    async def request(self, frame: dict[str, Any], *, repeatable: bool = False) -> Any:
        """:meth:`_call` once connected; a repeatable request survives reconnections."""
        deadline = asyncio.get_running_loop().time() + self.request_timeout * 2
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise BusError(f"the gateway is unreachable: {frame['type']} not sent")
            try:
                await asyncio.wait_for(self._connected.wait(), remaining)
            except TimeoutError:
                continue
            try:
                return await self._call(frame)
            except _ConnectionLost:
                if not repeatable:
                    raise BusError(
                        f"the connection dropped during {frame['type']}: it may or may not "
                        "have been applied"
                    ) from None

    # the operations

    async def register(self, card: AgentCard, ttl_seconds: float) -> float:
        frame = {
            "type": "agent:register",
            "card": card.model_dump(mode="json", exclude_none=True),
            "ttl_seconds": ttl_seconds,
        }
        data = await self.request(frame, repeatable=True)
        self._registration = frame
        return float(data["ttl_seconds"])

    async def deregister(self, reason: str | None) -> None:
        await self.request({"type": "agent:deregister", "reason": reason})
        self._registration = None

    async def heartbeat(self) -> None:
        await self.request({"type": "agent:heartbeat"}, repeatable=True)

    async def send(
        self,
        to: tuple[str, ...],
        task_id: str | None,
        message_type: MessageType,
        message: Message,
    ) -> MessageRecord:
        frame = {
            "type": "message:send",
            "to": list(to) or None,
            "task_id": task_id,
            "message_type": message_type.value,
            "message": message.model_dump(mode="json", exclude_none=True),
        }
        # A message keeps its id: a repeated send is answered with the original.
        view = await self.request(_compact(frame), repeatable=True)
        return MessageRecord.model_validate(view["record"])

    async def broadcast(
        self, capability: str | None, message_type: MessageType, message: Message
    ) -> MessageRecord:
        frame = {
            "type": "message:send",
            "broadcast": True,
            "capability": capability,
            "message_type": message_type.value,
            "message": message.model_dump(mode="json", exclude_none=True),
        }
        view = await self.request(_compact(frame), repeatable=True)
        return MessageRecord.model_validate(view["record"])

    async def ack(self, message_ids: list[str]) -> None:
        for start in range(0, len(message_ids), 1_000):
            chunk = message_ids[start : start + 1_000]
            await self.request({"type": "message:ack", "message_ids": chunk}, repeatable=True)

    async def submit(self, task: CreateTask) -> None:
        body = task.model_dump(mode="json", exclude_none=True)
        await self.request({"type": "task:create", "task": body})

    async def report(
        self,
        task_id: str,
        state: TaskState,
        message: Message | None,
        result: Any,
        reason: str | None,
    ) -> None:
        frame = {
            "type": "task:update",
            "command_id": chosen(),
            "task_id": task_id,
            "state": state.value,
            "message": message.model_dump(mode="json", exclude_none=True) if message else None,
            "result": result,
            "reason": reason,
        }
        # Repeating a report is safe: a transition made already is refused, not made twice.
        await self.request(_compact(frame), repeatable=True)

    async def memory_set(
        self,
        key: str,
        value: Any,
        expected_version: int | None,
        readers: Iterable[str] | None,
        writers: Iterable[str] | None,
    ) -> MemoryItem:
        frame = {
            "type": "memory:set",
            "key": key,
            "value": value,
            "expected_version": expected_version,
            "readers": list(readers) if readers is not None else None,
            "writers": list(writers) if writers is not None else None,
        }
        frame = {k: v for k, v in frame.items() if v is not None or k == "value"}
        return MemoryItem.model_validate(await self.request(frame))

    async def memory_delete(self, key: str, expected_version: int | None) -> None:
        frame = {"type": "memory:delete", "key": key, "expected_version": expected_version}
        await self.request(_compact(frame))

    async def memory_get(self, key: str) -> MemoryItem | None:
        try:
            data = await self.request({"type": "memory:get", "key": key}, repeatable=True)
        except Rejected as exc:
            if exc.code == "not_found":
                return None
            raise
        return MemoryItem.model_validate(data)

    async def subscribe(self, patterns: tuple[str, ...]) -> tuple[str, ...]:
        frame = {"type": "memory:subscribe", "patterns": list(patterns)}
        return tuple((await self.request(frame, repeatable=True))["subscriptions"])

    async def unsubscribe(self, patterns: tuple[str, ...]) -> tuple[str, ...]:
        frame = {"type": "memory:unsubscribe", "patterns": list(patterns)}
        return tuple((await self.request(frame, repeatable=True))["subscriptions"])

    # deliveries

    async def deliveries(self) -> AsyncIterator[Delivery]:
        while True:
            yield await self._deliveries.get()

    async def finished(self, delivery: Delivery) -> None:
        """Nothing to do: the gateway's pushes carry no position to commit."""

    def abandoned(self, delivery: Delivery) -> None:
        """The task stays open and assigned: the next connection picks it up again."""


def _compact(frame: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if v is not None}


def _delivery(push: Any) -> Delivery | None:
    match push.type:
        case "message:received":
            return Delivery(push.delivery_id, "message", record=push.message)
        case "task:assigned":
            return Delivery(push.delivery_id, "task_assigned", task=push.task)
        case "task:updated":
            return Delivery(push.delivery_id, "task_updated", task=push.task, role=push.role)
        case "memory:updated":
            change = MemoryChange(push.key, push.version, push.deleted, push.updated_by, push.item)
            return Delivery(push.delivery_id, "memory", change=change)
    return None  # agent:joined / agent:left: not deliveries
