"""The hub's MCP server, through the official MCP client: over streamable HTTP at
``/bus/mcp`` and ``/mcp``, and in memory. Every one of the 19 tools is called, and bad
arguments come back as tool errors."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from kolony.appclient import connect
from services.mcp import build_server
from tests.conftest import wait_for
from tests.e2e.test_apps import FAST_CHECKS, notebook_app, tools_of  # noqa: F401 - a fixture
from tests.e2e.test_door import nested
from tests.e2e.test_tasks import register, skilled
from tests.support.processes import settings_env

pytestmark = pytest.mark.kafka

TOOLS = {
    "agent__list",
    "agent__whoami",
    "message__send",
    "message__receive",
    "app__list",
    "app__get",
    "app__list_tools",
    "app__execute",
    "task__create",
    "task__get",
    "task__list",
    "task__update_status",
    "task__cancel",
    "hub_status",
    "discover_agents",
    "delegate_task",
    "get_task_result",
    "broadcast_message",
    "list_tasks",
}


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content}"
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    result: CallToolResult = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


async def test_an_mcp_client_uses_the_network_through_bus_mcp(
    served: Any,
    notebook_app: Any,  # noqa: F811
) -> None:
    stack = served.stack
    client = stack.client
    alice = await register(client, skilled("alice", "research"))
    bob = await register(client, skilled("bob", "summarize"))
    app = await notebook_app()
    app_id = (await client.post("/apps", json=app.registration("notebook"))).json()["app_id"]
    await wait_for(lambda: tools_of(client, app_id), timeout=20, what="the app's tools")

    async with (
        Client(f"{served.url}/bus/mcp?agent_id={alice}") as as_alice,
        connect(
            f"{served.url}/mcp", within=30, headers={"X-Kolony-Agent-Id": bob}, protocol="auto"
        ) as as_bob,
        Client(f"{served.url}/mcp") as anonymous,
    ):
        assert {t.name for t in (await as_alice.list_tools()).tools} == TOOLS

        # who is who
        assert (await call(as_alice, "agent__whoami"))["agent_id"] == alice
        assert (await call(as_bob, "agent__whoami"))["agent_id"] == bob
        assert "names none" in await refused(anonymous, "agent__whoami")
        listed = await call(anonymous, "agent__list")
        assert {a["agent_id"] for a in listed["agents"]} == {alice, bob}
        assert [
            a["agent_id"]
            for a in (await call(anonymous, "agent__list", capability="summarize"))["agents"]
        ] == [bob]
        found = await call(as_alice, "discover_agents", capability="summarize")
        assert [a["name"] for a in found["agents"]] == ["bob"]
        assert "summarize" in found["agents"][0]["capabilities"]

        # messages
        sent = await call(as_alice, "message__send", to_agent_id=bob, content="hello bob")
        assert sent["record"]["sender_id"] == alice
        inbox = await call(as_bob, "message__receive")
        assert [(m["from_agent_id"], m["content"]) for m in inbox["messages"]] == [
            (alice, "hello bob")
        ]
        assert (await call(as_bob, "message__receive"))["total"] == 0  # marked read
        shout = await call(as_alice, "broadcast_message", content="all hands")
        assert shout["recipients"] >= 1
        assert "at least 1" in (
            await refused(as_alice, "message__send", to_agent_id=bob, content="")
        )
        assert "not registered" in await refused(
            as_alice, "message__send", to_agent_id="ghost", content="hi"
        )

        # tasks: created by alice for bob, worked on and completed by bob
        task = await call(as_alice, "task__create", description="summarize this", assignee_id=bob)
        task_id = task["id"]
        assert task["requester_id"] == alice and task["assignee_id"] == bob
        await call(as_bob, "task__update_status", task_id=task_id, status="working")
        done = await call(
            as_bob,
            "task__update_status",
            task_id=task_id,
            status="completed",
            result={"answer": 42},
        )
        assert done["status"]["state"] == "completed"
        assert (await call(as_alice, "task__get", task_id=task_id))["result"] == {"answer": 42}
        outcome = await call(as_alice, "get_task_result", task_id=task_id)
        assert outcome["finished"] is True and outcome["result"] == {"answer": 42}
        mine = await call(as_alice, "task__list", requester_id=alice)
        assert [t["id"] for t in mine["tasks"]] == [task_id]
        completed = await call(anonymous, "list_tasks", status=["completed"])
        assert [t["task_id"] for t in completed["tasks"]] == [task_id]

        delegated = await call(
            as_alice, "delegate_task", capability="summarize", description="again"
        )
        assert delegated["assignee_id"] == bob
        waiting = await call(
            as_alice, "get_task_result", task_id=delegated["task_id"], wait_seconds=0.2
        )
        assert waiting["finished"] is False
        cancelled = await call(
            as_alice, "task__cancel", task_id=delegated["task_id"], reason="no longer needed"
        )
        assert cancelled["status"]["state"] == "cancelled"
        assert "exactly one" in await refused(as_alice, "delegate_task", description="x")
        assert "not" in await refused(as_alice, "task__get", task_id="no-such-task")
        assert await refused(as_bob, "task__update_status", task_id=task_id, status="dancing")
        assert await refused(as_alice, "task__cancel", task_id=task_id)  # finished already
        # The door's limits hold here too: a tool error naming the limit, never a hang.
        deep = await refused(as_alice, "task__create", description="x", input=nested(36))
        assert "deep" in deep and "32" in deep, deep
        large = await refused(
            as_alice, "delegate_task", description="x", capability="summarize", input="y" * 400_000
        )
        assert "bytes" in large or "large" in large, large

        # apps, through the proxy, each agent in its own session
        apps = await call(as_alice, "app__list", include_tools=True)
        assert apps["apps"][0]["app_id"] == app_id and apps["apps"][0]["tools_count"] >= 5
        assert (await call(as_alice, "app__get", app_id=app_id))["name"] == "notebook"
        schemas = await call(as_alice, "app__list_tools", app_id=app_id)
        note_add = next(t for t in schemas["tools"] if t["name"] == "note_add")
        assert note_add["inputSchema"]["required"] == ["text"]
        await call(
            as_alice, "app__execute", app_id=app_id, tool_name="note_add", arguments={"text": "a1"}
        )
        await call(
            as_bob, "app__execute", app_id=app_id, tool_name="note_add", arguments={"text": "b1"}
        )
        listed_notes = await call(as_alice, "app__execute", app_id=app_id, tool_name="note_list")
        assert listed_notes == {"notes": ["a1"]}
        assert (await call(as_bob, "app__execute", app_id=app_id, tool_name="note_list")) == {
            "notes": ["b1"]
        }
        context = await call(as_alice, "app__execute", app_id=app_id, tool_name="whoami")
        assert context["context"]["agent_id"] == alice
        assert "needs some text" in await refused(
            as_alice, "app__execute", app_id=app_id, tool_name="note_add", arguments={"text": " "}
        )
        assert "not registered" in await refused(
            as_alice, "app__execute", app_id="nope", tool_name="x"
        )
        assert "no tool" in await refused(as_alice, "app__execute", app_id=app_id, tool_name="x")

        status = await call(anonymous, "hub_status")
        assert status["agents"]["online"] == 2 and status["apps"] == {"total": 1, "healthy": 1}
        assert status["tasks"]["total"] == 2 and status["tasks"]["open"] == 0

        # bad arguments are tool errors, never crashes
        assert await refused(as_alice, "task__create", priority=99)
        assert await refused(as_alice, "message__receive", limit=0)
        assert await refused(as_alice, "agent__list", capability=7)


async def test_the_tools_in_memory_with_the_agent_from_meta(stack: Any) -> None:
    hub = await stack()
    alice = await register(hub.client, skilled("alice", "research"))
    bob = await register(hub.client, skilled("bob", "research"))
    async with Client(build_server(hub.hub, agent_id=alice)) as client:
        assert len((await client.list_tools()).tools) == 19
        assert (await call(client, "agent__whoami"))["agent_id"] == alice
        as_bob = await client.call_tool("agent__whoami", {}, meta={"kolony/agent_id": bob})
        assert (
            as_bob.structured_content is not None and as_bob.structured_content["agent_id"] == bob
        )
        task = await call(client, "task__create", title="in memory", description="x")
        assert task["requester_id"] == alice and task["status"]["state"] == "submitted"
        await asyncio.sleep(0)
        assert (await call(client, "hub_status"))["caught_up"] is True


async def test_kolony_mcp_serves_the_tools_over_stdio(stack: Any, tmp_path: Any) -> None:
    """What an assistant such as Claude Code runs: ``kolony mcp --agent-id ...``."""
    hub = await stack()
    alice = await register(hub.client, skilled("alice", "research"))
    bob = await register(hub.client, skilled("bob", "summarize"))
    errors = (tmp_path / "mcp-stderr.log").open("w")
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "kolony", "mcp", "--agent-id", alice],
        env=settings_env(hub.settings),
    )
    try:
        async with Client(stdio_client(server, errlog=errors)) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            assert (await call(client, "agent__whoami"))["agent_id"] == alice
            sent = await call(client, "message__send", to_agent_id=bob, content="over stdio")
            assert sent["record"]["sender_id"] == alice
            delegated = await call(
                client, "delegate_task", capability="summarize", description="from stdio"
            )
            assert delegated["assignee_id"] == bob
            assert "'nope'" in await refused(client, "task__get", task_id="nope")
    finally:
        errors.close()
    mailbox = (await hub.client.get(f"/agents/{bob}/messages")).json()
    assert [m["record"]["message"]["parts"][0]["text"] for m in mailbox] == ["over stdio"]
