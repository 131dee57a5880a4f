"""The WebSocket protocol, driven by a plain ``websockets`` client as a non-Python agent
would: JSON frames in, JSON frames out."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import Served, wait_for
from tests.e2e.test_door import nested
from tests.e2e.test_registry import card

pytestmark = pytest.mark.kafka


class Agent:
    """A raw WebSocket connection that records every frame the server sends."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []
        self.ids = itertools.count(1)
        self.agent_id: str | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.socket:
                self.frames.append(json.loads(raw))

    async def raw(self, payload: str | bytes) -> None:
        await self.socket.send(payload)

    async def request(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send a request; return its ack or error frame."""
        request_id = next(self.ids)
        await self.socket.send(json.dumps({"type": type, "id": request_id, **fields}))
        return await self.answer(request_id)

    async def answer(self, request_id: Any) -> dict[str, Any]:
        found: dict[str, Any] = await wait_for(
            lambda: next(
                (
                    f
                    for f in self.frames
                    if f["type"] in ("ack", "error") and f.get("id") == request_id
                ),
                None,
            ),
            timeout=15,
            what=f"the answer to request {request_id}",
        )
        return found

    async def ok(self, type: str, **fields: Any) -> Any:
        answer = await self.request(type, **fields)
        assert answer["type"] == "ack", answer
        return answer["data"]

    def pushed(self, type: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == type]

    async def close(self) -> None:
        await self.socket.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def sockets(served: Served) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """A stack served over real HTTP, and a way to open agent connections to it."""
    hub, port = served.stack, served.port
    opened: list[Agent] = []

    async def open_socket(path: str = "/ws") -> Agent:
        agent = Agent(await connect(f"ws://127.0.0.1:{port}{path}"))
        opened.append(agent)
        hello = await wait_for(lambda: agent.pushed("hello"), timeout=10, what="hello")
        assert hello[0]["protocol_version"] == 1
        return agent

    open_socket.hub = hub  # type: ignore[attr-defined]
    yield open_socket
    for agent in opened:
        with contextlib.suppress(Exception):
            await agent.close()


async def join(sockets: Any, name: str, *skills: str) -> Agent:
    agent: Agent = await sockets()
    skill_list = [{"id": s, "name": s.title(), "tags": []} for s in skills]
    data = await agent.ok("agent:register", card=card(name, skills=skill_list))
    agent.agent_id = data["agent_id"]
    return agent


async def test_two_agents_talk_in_order_without_duplicates(sockets: Any) -> None:
    alice = await join(sockets, "ws-alice", "plan")
    bob = await join(sockets, "ws-bob", "summarize")
    joined = await wait_for(
        lambda: [f for f in alice.pushed("agent:joined") if f["agent"]["agent_id"] == bob.agent_id],
        timeout=10,
        what="alice to hear bob join",
    )
    assert joined[0]["agent"]["card"]["name"] == "ws-bob"

    for i in range(20):
        sent = await alice.ok("message:send", to=bob.agent_id, content=f"hello {i}")
        assert sent["recipients"] == [bob.agent_id]
    received = await wait_for(
        lambda: len(bob.pushed("message:received")) >= 20 and bob.pushed("message:received"),
        timeout=15,
        what="bob's 20 messages",
    )
    texts = [f["message"]["message"]["parts"][0]["text"] for f in received]
    assert texts == [f"hello {i}" for i in range(20)]
    assert len({f["delivery_id"] for f in received}) == 20

    beat = await bob.ok("agent:heartbeat", status="busy")
    assert beat["status"] == "busy"
    # Pushed is not read: receive returns them (oldest first) and marks them read.
    unread = (await bob.ok("message:receive"))["messages"]
    assert len(unread) == 20
    assert (await bob.ok("message:receive"))["messages"] == []
    found = await alice.ok("agent:discover", capability="summarize")
    assert [a["agent_id"] for a in found["agents"]] == [bob.agent_id]
    assert found["total"] == 1 and "next_page_token" not in found
    first = await alice.ok("agent:discover", page_size=1)
    second = await alice.ok("agent:discover", page_size=1, page_token=first["next_page_token"])
    assert first["total"] == second["total"] == 2 and "next_page_token" not in second
    paged = [a["agent_id"] for a in first["agents"] + second["agents"]]
    assert sorted(paged) == sorted([alice.agent_id, bob.agent_id])
    bad = await alice.request("agent:discover", page_token="not-ours")  # noqa: S106 - not a password
    assert bad["type"] == "error" and bad["code"] == "invalid", bad


async def test_malformed_frames_get_errors_and_the_connection_stays_up(sockets: Any) -> None:
    agent = await sockets()
    cases: list[tuple[str | bytes, Any]] = [
        ("this is not json", None),
        ("[1, 2, 3]", None),
        (json.dumps({"type": "no:such-frame", "id": "bad-1"}), "bad-1"),
        (json.dumps({"type": "message:send", "id": "bad-2"}), "bad-2"),
        (json.dumps({"type": "memory:get", "id": "bad-3", "key": "bad key!"}), "bad-3"),
        (json.dumps({"type": "agent:register", "id": 1004, "card": {"name": ""}}), 1004),
        (b"\xff\x00\xfe", None),
        (json.dumps({"type": "agent:heartbeat", "id": "bad-5", "extra": True}), "bad-5"),
    ]
    for payload, request_id in cases:
        before = len(agent.pushed("error"))
        await agent.raw(payload)
        errors = await wait_for(
            lambda before=before: agent.pushed("error")[before:],
            timeout=10,
            what=f"an error frame for {payload!r}",
        )
        assert errors[0]["code"] == "invalid" and errors[0]["detail"], errors
        assert errors[0].get("id") == request_id
    unbound = await agent.request("message:send", to="x", content="hi")
    assert unbound["type"] == "error" and "agent:register" in unbound["detail"]
    # Still up, and usable.
    data = await agent.ok("agent:register", card=card("survivor"))
    assert data["card"]["name"] == "survivor"
    missing = await agent.request("message:send", to="nobody-here", content="hi")
    assert missing["type"] == "error" and missing["code"] == "not_found", missing


async def test_tasks_and_memory_over_the_socket(sockets: Any) -> None:
    boss = await join(sockets, "ws-boss", "plan")
    worker = await join(sockets, "ws-worker", "summarize")

    task = await boss.ok("task:create", task={"title": "Sum it up", "capability": "summarize"})
    assert task["assignee_id"] == worker.agent_id and task["requester_id"] == boss.agent_id
    assigned = await wait_for(
        lambda: worker.pushed("task:assigned"), timeout=10, what="the task:assigned push"
    )
    assert assigned[0]["task"]["id"] == task["id"]
    await worker.ok("task:update", task_id=task["id"], state="IN_PROGRESS")
    done = await worker.ok(
        "task:update", task_id=task["id"], state="completed", result={"summary": "short"}
    )
    assert done["status"]["state"] == "completed"
    updated = await wait_for(
        lambda: [
            f for f in boss.pushed("task:updated") if f["task"]["status"]["state"] == "completed"
        ],
        timeout=10,
        what="the boss to hear of completion",
    )
    assert updated[0]["role"] == "requester"
    illegal = await worker.request("task:update", task_id=task["id"], state="working")
    assert illegal["type"] == "error" and illegal["code"] == "conflict"
    thread = await worker.ok("message:send", task_id=task["id"], content="done, see result")
    assert thread["recipients"] == [boss.agent_id]

    await worker.ok("memory:subscribe", prefixes=["shared."])
    item = await boss.ok("memory:set", key="shared.notes", value={"n": 1}, expected_version=0)
    assert item["version"] == 1 and item["acl"]["owner"] == boss.agent_id
    pushed = await wait_for(
        lambda: worker.pushed("memory:updated"), timeout=10, what="the memory:updated push"
    )
    assert pushed[0]["key"] == "shared.notes" and pushed[0]["item"]["value"] == {"n": 1}
    got = await worker.ok("memory:get", key="shared.notes")
    assert got["value"] == {"n": 1}
    lost = await worker.request("memory:set", key="shared.notes", value=2, expected_version=0)
    assert lost["type"] == "error" and lost["code"] in ("conflict", "forbidden")
    listed = await worker.ok("memory:list", prefix="shared.")
    assert [i["key"] for i in listed["items"]] == ["shared.notes"]
    conflict = await boss.request("memory:set", key="shared.notes", value=3, expected_version=7)
    assert conflict["type"] == "error" and conflict["code"] == "conflict"
    assert conflict["current_version"] == 1


async def test_an_agent_that_reconnects_gets_what_it_missed(sockets: Any) -> None:
    alice = await join(sockets, "ws-alice", "plan")
    bob = await join(sockets, "ws-bob", "write")
    bob_id = bob.agent_id
    await bob.close()
    for i in range(3):
        await alice.ok("message:send", to=bob_id, content=f"missed {i}")

    again: Agent = await sockets(f"/ws/{bob_id}")
    assert again.pushed("hello")[0]["agent_id"] == bob_id
    backlog = await wait_for(
        lambda: len(again.pushed("message:received")) >= 3 and again.pushed("message:received"),
        timeout=10,
        what="the backlog",
    )
    assert [f["message"]["message"]["parts"][0]["text"] for f in backlog] == [
        f"missed {i}" for i in range(3)
    ]
    await again.ok("message:ack", message_ids=[f["message"]["message_id"] for f in backlog])
    # Acked: the next connection is not told again. Leaving is announced to the others.
    await again.ok("agent:deregister")
    left = await wait_for(
        lambda: [f for f in alice.pushed("agent:left") if f["agent_id"] == bob_id],
        timeout=10,
        what="alice to hear bob leave",
    )
    assert left[0]["reason"] == "deregistered"
    hub = sockets.hub.hub
    await wait_for(
        lambda: not hub.messages.mailbox(bob_id, unread_only=True),
        timeout=10,
        what="the acks to be folded",
    )


async def test_websocket_refusals_are_error_frames_and_the_socket_stays(sockets: Any) -> None:
    agent = await join(sockets, "door-agent", "plan")
    null = await agent.request("memory:set", key="k", value=None)
    assert null["type"] == "error" and null["code"] == "invalid", null
    deep = await agent.request("memory:set", key="k", value=nested(36))
    assert deep["type"] == "error" and "limit" in deep["detail"], deep
    await agent.raw(
        '{"type": "agent:discover", "id": 99, "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    )
    hostile = await wait_for(
        lambda: [f for f in agent.frames if f["type"] == "error" and "limit" in f["detail"]],
        timeout=10,
        what="an error frame for the hostile frame",
    )
    assert hostile
    still = await agent.request("memory:set", key="k", value={"fine": True})
    assert still["type"] == "ack", still


async def test_a_websocket_retry_with_the_same_command_id_is_answered_once(sockets: Any) -> None:
    agent = await join(sockets, "idem-agent", "plan")
    first = await agent.request("memory:set", key="idem", value=1, command_id="ws-write-1")
    again = await agent.request("memory:set", key="idem", value=1, command_id="ws-write-1")
    assert first["type"] == again["type"] == "ack", (first.get("detail"), again.get("detail"))
    assert first["data"]["version"] == again["data"]["version"] == 1
