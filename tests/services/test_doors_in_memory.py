"""The use cases through each door, without a broker: REST (FastAPI's TestClient), MCP (the SDK's
in-memory client) and the WebSocket, on a hub whose commands the core's deciders decide in
process (tests/support/memory_log.py). The same refusal reads alike at every door."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client

from services.gateway.app import create_app
from services.hub import Hub
from services.mcp import build_server
from tests.support.memory_log import InMemoryLog, in_memory_hub


def card(name: str, skill: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "skills": [{"id": skill, "name": skill}]}


@pytest.fixture
def hub() -> tuple[Hub, InMemoryLog]:
    return in_memory_hub()


@pytest.fixture
def rest(hub: tuple[Hub, InMemoryLog]) -> Iterator[TestClient]:
    the_hub, _ = hub
    with TestClient(create_app(the_hub.settings, the_hub)) as client:
        yield client


def test_the_hub_is_ready_and_says_so(rest: TestClient) -> None:
    health = rest.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"


def test_register_delegate_by_capability_and_finish(
    rest: TestClient, hub: tuple[Hub, InMemoryLog]
) -> None:
    created = rest.post("/agents", json=card("summarizer", "summarize"))
    assert created.status_code == 201, created.text
    agent_id = created.json()["agent_id"]
    again = rest.post("/agents", json=card("summarizer", "summarize"))
    assert (again.status_code, again.json()["agent_id"]) == (200, agent_id)

    found = rest.get("/agents", params={"capability": "summarize"}).json()
    assert [a["agent_id"] for a in found["agents"]] == [agent_id]

    task = rest.post("/tasks", json={"capability": "summarize", "title": "Sum it up"})
    assert task.status_code == 201, task.text
    task_id = task.json()["id"]
    assert task.json()["assignee_id"] == agent_id

    for state in ("working", "completed"):
        moved = rest.post(f"/tasks/{task_id}/status", json={"state": state, "agent_id": agent_id})
        assert moved.status_code == 200, moved.text
    assert rest.get(f"/tasks/{task_id}").json()["status"]["state"] == "completed"

    refused = rest.post(f"/tasks/{task_id}/status", json={"state": "working"})
    assert refused.status_code == 409
    assert "completed" in refused.json()["detail"]

    history = [e["type"] for e in rest.get(f"/tasks/{task_id}/events").json()]
    assert history[0] == "task.submitted" and "task.status_changed" in history
    assert history[-1] == "command.rejected"  # the refusal is in the task's history too


def test_a_retried_request_gets_its_first_outcome_without_a_second_command(
    rest: TestClient, hub: tuple[Hub, InMemoryLog]
) -> None:
    _, log = hub
    headers = {"Idempotency-Key": "write-once"}
    first = rest.put("/memory/notes.a", json={"value": {"n": 1}}, headers=headers)
    published = len(log.published)
    second = rest.put("/memory/notes.a", json={"value": {"n": 1}}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(log.published) == published


def test_compare_and_set_loses_with_the_current_version(rest: TestClient) -> None:
    assert rest.put("/memory/plan", json={"value": 1, "expected_version": 0}).status_code == 201
    assert rest.put("/memory/plan", json={"value": 2, "expected_version": 1}).status_code == 200
    lost = rest.put("/memory/plan", json={"value": 3, "expected_version": 1})
    assert lost.status_code == 409
    assert lost.json()["current_version"] == 2
    assert rest.get("/memory/plan").json()["value"] == 2


def test_messages_go_to_the_mailbox_and_are_read_once(rest: TestClient) -> None:
    alice = rest.post("/agents", json=card("alice", "talk")).json()["agent_id"]
    bob = rest.post("/agents", json=card("bob", "listen")).json()["agent_id"]
    sent = rest.post("/messages", json={"sender_id": alice, "to": bob, "content": "hello"})
    assert sent.status_code == 201, sent.text
    unread = rest.post(f"/agents/{bob}/messages/receive").json()["messages"]
    assert [m["record"]["message"]["parts"][0]["text"] for m in unread] == ["hello"]
    assert rest.post(f"/agents/{bob}/messages/receive").json()["messages"] == []
    assert len(rest.get(f"/agents/{bob}/messages").json()) == 1  # kept, read
    stranger = rest.post("/messages", json={"sender_id": alice, "to": "nobody", "content": "x"})
    assert stranger.status_code == 404


def test_an_unknown_agent_is_the_same_refusal_at_every_door(
    rest: TestClient, hub: tuple[Hub, InMemoryLog]
) -> None:
    the_hub, _ = hub
    assert rest.get("/agents/nobody").status_code == 404
    assert "nobody" in rest.get("/agents/nobody").json()["detail"]
    with rest.websocket_connect("/ws") as socket:
        socket.receive_json()  # hello
        socket.send_text(json.dumps({"type": "agent:attach", "id": "1", "agent_id": "nobody"}))
        frame = socket.receive_json()
        assert frame["type"] == "error" and frame["code"] == "not_found", frame


async def test_mcp_tools_act_for_the_calling_agent(hub: tuple[Hub, InMemoryLog]) -> None:
    the_hub, _ = hub
    with TestClient(create_app(the_hub.settings, the_hub)) as rest:
        alice = rest.post("/agents", json=card("alice", "talk")).json()["agent_id"]
        rest.post("/agents", json=card("bob", "summarize"))
    async with Client(build_server(the_hub, agent_id=alice)) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"agent__whoami", "delegate_task", "hub_status", "app__execute"} <= names
        me = await client.call_tool("agent__whoami", {})
        assert not me.is_error and me.structured_content["agent_id"] == alice
        delegated = await client.call_tool(
            "delegate_task", {"description": "sum it", "capability": "summarize"}
        )
        assert not delegated.is_error, delegated
        status = await client.call_tool("hub_status", {})
        assert status.structured_content["status"] == "ok"
        assert status.structured_content["tasks"] == {"total": 1, "open": 1}
        missing = await client.call_tool("task__get", {"task_id": "nothing-here"})
        assert missing.is_error
        assert "not_found: task 'nothing-here' does not exist" in missing.content[0].text
