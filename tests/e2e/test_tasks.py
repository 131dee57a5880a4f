"""Tasks and delegation end to end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.test_registry import card
from tests.support.inbox import Inbox

pytestmark = pytest.mark.kafka


def skilled(name: str, *skills: str) -> dict[str, Any]:
    return card(name, skills=[{"id": s, "name": s.title(), "tags": []} for s in skills])


@pytest.fixture
async def inboxes() -> AsyncIterator[Callable[..., Awaitable[Inbox]]]:
    opened: list[Inbox] = []

    async def open_inbox(stack: Any, agent_id: str, from_beginning: bool = False) -> Inbox:
        inbox = await Inbox(stack.settings, agent_id, from_beginning=from_beginning).start()
        opened.append(inbox)
        return inbox

    yield open_inbox
    for inbox in opened:
        await inbox.stop()


async def register(client: Any, body: dict[str, Any], ttl: float | None = None) -> str:
    params = {"ttl": ttl} if ttl else {}
    answer = await client.post("/agents", json=body, params=params)
    assert answer.status_code in (200, 201), answer.text
    agent_id: str = answer.json()["agent_id"]
    return agent_id


async def test_delegate_by_capability_complete_and_the_requester_sees_it(
    stack: Any, inboxes: Any
) -> None:
    hub = await stack()
    client = hub.client
    boss = await register(client, skilled("researcher", "research"))
    workers = [await register(client, skilled(f"summarizer-{i}", "summarize")) for i in range(2)]
    boss_inbox = await inboxes(hub, boss)
    worker_inboxes = {w: await inboxes(hub, w) for w in workers}

    created = await client.post(
        "/tasks",
        json={
            "title": "Summarize the report",
            "capability": "summarize",
            "requester_id": boss,
            "priority": 3,
            "input": {"url": "https://example.com/report"},
            "initial_message": "Keep it under 100 words",
            "context_id": "ctx-1",
        },
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["status"]["state"] == "submitted"
    assert task["assignee_id"] in workers
    assert task["history"][0]["parts"][0]["text"] == "Keep it under 100 words"
    first_assignee = task["assignee_id"]

    # A second task goes to the other agent: it has fewer open tasks.
    second = (await client.post("/tasks", json={"capability": "summarize"})).json()
    assert second["assignee_id"] in workers and second["assignee_id"] != first_assignee

    inbox = worker_inboxes[first_assignee]
    [delivery] = await wait_for(
        lambda: inbox.of_type("inbox.task_assigned", task["id"]),
        timeout=10,
        what="the assignee to receive the task",
    )
    assert delivery.task.input == {"url": "https://example.com/report"}

    working = await client.post(
        f"/tasks/{task['id']}/status",
        json={"state": "IN_PROGRESS", "message": "reading", "agent_id": first_assignee},
    )
    assert working.status_code == 200, working.text
    assert working.json()["status"]["state"] == "working"
    done = await client.post(
        f"/tasks/{task['id']}/complete",
        json={"result": {"summary": "short"}, "agent_id": first_assignee},
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"]["state"] == "completed"

    [update] = await wait_for(
        lambda: [
            i
            for i in boss_inbox.of_type("inbox.task_updated", task["id"])
            if i.task.status.state == "completed"
        ],
        timeout=10,
        what="the requester to hear the task completed",
    )
    assert update.role == "requester"
    assert update.task.result == {"summary": "short"}

    got = (await client.get(f"/tasks/{task['id']}", params={"history_length": 1})).json()
    assert got["result"] == {"summary": "short"}
    assert len(got["history"]) == 1
    [assignment] = (await client.get(f"/tasks/{task['id']}/assignments")).json()
    assert assignment["agent_id"] == first_assignee
    assert assignment["status"] == "completed"
    kinds = [e["type"] for e in (await client.get(f"/tasks/{task['id']}/events")).json()]
    assert kinds == ["task.submitted", "task.status_changed", "task.status_changed"]

    listed = (await client.get("/tasks", params={"context_id": "ctx-1"})).json()
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]
    mine = (await client.get("/tasks", params={"requester": boss, "status": "COMPLETED"})).json()
    assert mine["total_size"] == 1


async def test_paging_and_filters(stack: Any) -> None:
    hub = await stack(workers=1)
    client = hub.client
    for i in range(5):
        answer = await client.post("/tasks", json={"title": f"t{i}", "priority": 1 + i % 4})
        assert answer.status_code == 201, answer.text
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"page_size": 2}
        if token:
            params["page_token"] = token
        page = (await client.get("/tasks", params=params)).json()
        assert page["total_size"] == 5
        seen.extend(t["title"] for t in page["tasks"])
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == [f"t{i}" for i in reversed(range(5))], "newest first, each task once"
    urgent = (await client.get("/tasks", params={"priority": 4})).json()
    assert [t["title"] for t in urgent["tasks"]] == ["t3"]
    pending = (await client.get("/tasks/pending")).json()
    assert pending["total_size"] == 5
    bad = await client.get("/tasks", params={"page_token": "nonsense"})
    assert bad.status_code == 422


async def test_illegal_transitions_and_bad_input_get_clear_errors(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    agent = await register(client, skilled("doer", "do"))
    task = (await client.post("/tasks", json={"assignee_id": agent})).json()
    assert task["assignee_id"] == agent

    wrong = await client.post(
        f"/tasks/{task['id']}/status", json={"state": "working", "agent_id": "someone-else"}
    )
    assert wrong.status_code == 403 and "may not report" in wrong.json()["detail"]
    timeout = await client.post(f"/tasks/{task['id']}/status", json={"state": "TIMEOUT"})
    assert timeout.status_code == 422 and "TTL" in timeout.json()["detail"]
    assert (await client.post(f"/tasks/{task['id']}/complete")).status_code == 200
    again = await client.post(f"/tasks/{task['id']}/status", json={"state": "working"})
    assert again.status_code == 409
    assert "completed already" in again.json()["detail"]
    cancel = await client.post(f"/tasks/{task['id']}/cancel")
    assert cancel.status_code == 409

    assert (await client.get("/tasks/no-such-task")).status_code == 404
    assert (await client.post("/tasks/no-such-task/cancel")).status_code == 404
    assert (await client.post("/tasks", json={"assignee_id": "nobody"})).status_code == 404
    for body in (
        {"priority": 9},
        {"ttl": -1},
        {"unknown_field": 1},
        {"capability": ""},
        {"due_at": "2030-01-01T00:00:00"},  # no time zone
    ):
        answer = await client.post("/tasks", json=body)
        assert answer.status_code == 422, (body, answer.text)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert (await client.post("/tasks", json={"due_at": past})).status_code == 422
    dup = await client.post("/tasks", json={"id": task["id"]})
    assert dup.status_code == 409 and "exists already" in dup.json()["detail"]
    bad_state = await client.post(f"/tasks/{task['id']}/status", json={"state": "dancing"})
    assert bad_state.status_code == 422

    # Junk on the command topic becomes a rejection; the worker keeps deciding.
    await hub.hub._producer.send_and_wait(
        hub.settings.topics.task_commands, key=b"x", value=b"{not json"
    )
    later = await client.post("/tasks", json={"title": "still alive"})
    assert later.status_code == 201

    deleted = await client.delete(f"/tasks/{later.json()['id']}")
    assert deleted.status_code == 200
    assert (await client.get(f"/tasks/{later.json()['id']}")).status_code == 404
    history = (await client.get(f"/tasks/{later.json()['id']}/events")).json()
    assert [e["type"] for e in history] == ["task.submitted", "task.deleted"]


async def test_waiting_tasks_ttl_expiry_and_overdue(stack: Any, inboxes: Any) -> None:
    hub = await stack()
    client = hub.client
    waiting = (await client.post("/tasks", json={"capability": "translate"})).json()
    assert "assignee_id" not in waiting, "nobody can take it yet"
    mortal = (await client.post("/tasks", json={"capability": "nobody-has-it", "ttl": 1})).json()
    due = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    late = (await client.post("/tasks", json={"title": "report", "due_at": due})).json()

    translator = await register(client, skilled("translator", "translate"))
    # From the beginning: the waiting task may reach the translator as soon as it registers,
    # before this reader would have found the end of the partition.
    inbox = await inboxes(hub, translator, from_beginning=True)
    await wait_for(
        lambda: inbox.of_type("inbox.task_assigned", waiting["id"]),
        timeout=15,
        what="the waiting task to reach the agent that appeared",
    )
    assert hub.hub.board.get(waiting["id"]).assignee_id == translator

    # Expired within 2 s of its TTL, and overdue marked once past due.
    await wait_for(
        lambda: hub.hub.board.get(mortal["id"]).status.state == "expired",
        timeout=1 + 2,
        what="TTL expiry",
    )
    expired = (await client.get(f"/tasks/{mortal['id']}")).json()
    assert expired["reason"] == "TTL of 1 s ran out"
    await wait_for(
        lambda: hub.hub.board.get(late["id"]).overdue, timeout=1 + 2, what="overdue marking"
    )
    overdue = (await client.get("/tasks/overdue")).json()
    assert [t["id"] for t in overdue["tasks"]] == [late["id"]]


@contextlib.asynccontextmanager
async def heartbeating(client: Any, agent_ids: list[str]) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            for agent_id in agent_ids:
                await client.post(f"/agents/{agent_id}/heartbeat")
            await asyncio.sleep(0.3)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_task_whose_assignee_dies_is_reassigned_then_failed(
    stack: Any, inboxes: Any
) -> None:
    hub = await stack()
    client = hub.client
    doomed = await register(client, skilled("doomed", "crunch"), ttl=1.5)
    task = (await client.post("/tasks", json={"capability": "crunch", "max_retries": 1})).json()
    assert task["assignee_id"] == doomed
    heir = await register(client, skilled("heir", "crunch"), ttl=1.5)
    heir_inbox = await inboxes(hub, heir)

    async with heartbeating(client, [heir]):
        # The doomed agent stops heartbeating: offline after its TTL, and the task moves.
        await wait_for(
            lambda: heir_inbox.of_type("inbox.task_assigned", task["id"]),
            timeout=1.5 + 5,
            what="the task to be re-assigned to the surviving agent",
            detail=lambda: explain(hub, task["id"], [doomed, heir]),
        )
        moved = (await client.get(f"/tasks/{task['id']}")).json()
        assert moved["assignee_id"] == heir
        assert moved["retries"] == 1
        trail = (await client.get(f"/tasks/{task['id']}/assignments")).json()
        assert [(a["agent_id"], a["status"]) for a in trail] == [
            (doomed, "lost"),
            (heir, "assigned"),
        ]
        assert trail[1]["reason"] == "reassigned"
    # Now the heir dies too, with no retries left: the task fails and says why.
    await wait_for(
        lambda: hub.hub.board.get(task["id"]).status.state == "failed",
        timeout=1.5 + 5,
        what="the task to fail once out of retries",
        detail=lambda: explain(hub, task["id"], [doomed, heir]),
    )
    failed = (await client.get(f"/tasks/{task['id']}")).json()
    assert "max_retries" in failed["reason"]


def explain(stack: Any, task_id: str, agents: list[str]) -> str:
    """What the gateway knows, for a failure message."""
    hub = stack.hub
    lines = [f"agent {a}: {hub.directory.status_of(a)}" for a in agents]
    lines += [f"  {e.type} {e.model_dump(exclude_none=True)}" for e in hub.board.events(task_id)]
    lines += [f"worker {w.worker_id}: {w}" for w in hub.live_workers()]
    return "\n".join(lines)


async def test_cancel_reaches_the_assignee(stack: Any, inboxes: Any) -> None:
    hub = await stack()
    client = hub.client
    boss = await register(client, skilled("boss", "lead"))
    agent = await register(client, skilled("cancellee", "work"))
    inbox = await inboxes(hub, agent)
    task = (await client.post("/tasks", json={"assignee_id": agent, "requester_id": boss})).json()
    other = await register(client, skilled("bystander", "watch"))
    refused = await client.post(f"/tasks/{task['id']}/cancel", json={"agent_id": other})
    assert refused.status_code == 403, refused.text
    assert "only its requester or assignee" in refused.json()["detail"]
    cancelled = await client.post(
        f"/tasks/{task['id']}/cancel", json={"agent_id": boss, "reason": "plans changed"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"]["state"] == "cancelled"
    [update] = await wait_for(
        lambda: [
            i
            for i in inbox.of_type("inbox.task_updated", task["id"])
            if i.task.status.state == "cancelled"
        ],
        timeout=10,
        what="the assignee to hear of the cancellation",
    )
    assert update.task.reason == "plans changed"
