"""``kolony tasks|messages|memory``, ``send``, ``delegate`` and ``replay`` against a live hub."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kolony.cli import main
from tests.conftest import Served, wait_for
from tests.e2e.test_registry import card
from tests.support.processes import settings_env

pytestmark = pytest.mark.kafka


async def kolony(served: Served, *args: str) -> Result:
    """Run the CLI in a thread (it blocks), so this loop keeps serving the gateway."""
    runner = CliRunner()
    env = settings_env(served.stack.settings) | {"KOLONY_URL": served.url}
    return await asyncio.to_thread(runner.invoke, main, list(args), env=env, catch_exceptions=False)


async def test_operators_see_and_drive_the_hub_from_the_command_line(served: Served) -> None:
    client = served.stack.client
    boss = (await client.post("/agents", json=card("boss"))).json()["agent_id"]
    between = datetime.now(UTC)
    await asyncio.sleep(0.05)
    skills = [{"id": "sum", "name": "Sum", "tags": []}]
    doer = (await client.post("/agents", json=card("doer", skills=skills))).json()["agent_id"]

    sent = await kolony(served, "send", "--from", boss, "--to", doer, "hello there")
    assert sent.exit_code == 0, sent.output
    assert "to 1 agent(s)" in sent.output
    listed = await kolony(served, "messages", "list", "--recipient", doer)
    assert "hello there" in listed.output and "1 of 1 message(s)" in listed.output
    as_json = json.loads((await kolony(served, "messages", "list", "--json")).stdout)
    [view] = as_json["messages"]
    message_id = view["record"]["message_id"]
    shown = json.loads((await kolony(served, "messages", "show", message_id)).stdout)
    assert shown["recipients"] == [doer]

    await client.put("/memory/plan.today", json={"value": {"steps": 3}})
    memory = await kolony(served, "memory", "list", "--prefix", "plan.")
    assert "plan.today" in memory.output and '{"steps": 3}' in memory.output
    item = json.loads((await kolony(served, "memory", "show", "plan.today")).stdout)
    assert item["version"] == 1

    queued = await kolony(
        served, "delegate", "--capability", "sum", "--input", '{"a": 1}', "--no-wait"
    )
    assert queued.exit_code == 0, queued.output
    task_id = queued.stdout.strip()
    tasks = await kolony(served, "tasks", "list", "--assignee", doer)
    assert task_id in tasks.output and "sum" in tasks.output
    detail = await kolony(served, "tasks", "show", task_id)
    assert f"assignee   {doer}" in detail.output and 'input      {"a": 1}' in detail.output

    async def complete_next() -> None:  # the doer finishes whatever it gets next
        async def open_task() -> Any:
            found = (await client.get("/tasks", params={"assignee": doer, "open": True})).json()
            return [t for t in found["tasks"] if t["id"] != task_id]

        [task] = await wait_for(open_task, timeout=30, what="the delegated task")
        await client.post(f"/tasks/{task['id']}/complete", json={"result": {"sum": 42}})

    finisher = asyncio.create_task(complete_next())
    waited = await kolony(served, "delegate", "--to", doer, "--input", "[1, 41]", "--timeout", "60")
    await finisher
    assert waited.exit_code == 0, waited.output
    assert '{"sum": 42}' in waited.output and "completed" in waited.output

    replayed = await kolony(served, "replay", "--until", between.isoformat())
    assert replayed.exit_code == 0, replayed.output
    assert boss in replayed.output and doer not in replayed.output, replayed.output
    everything = json.loads((await kolony(served, "replay", "--until", "now", "--json")).stdout)
    assert {a["agent_id"] for a in everything["agents"]} == {boss, doer}
    assert {t["status"]["state"] for t in everything["tasks"]} == {"submitted", "completed"}


async def test_errors_are_one_line_and_exit_non_zero(served: Served) -> None:
    missing = await kolony(served, "tasks", "show", "no-such-task")
    assert missing.exit_code == 1
    assert missing.output.strip().startswith("Error: 404:")
    assert len(missing.output.strip().splitlines()) == 1

    usage = await kolony(served, "send", "--from", "x", "hello")
    assert usage.exit_code == 2 and "--to/--task" in usage.output
    both = await kolony(served, "delegate", "--capability", "a", "--to", "b")
    assert both.exit_code == 2
    not_json = await kolony(served, "delegate", "--capability", "a", "--input", "{oops")
    assert not_json.exit_code == 2 and "not JSON" in not_json.output
    bad_time = await kolony(served, "replay", "--until", "yesterday-ish")
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.output

    unknown_sender = await kolony(served, "send", "--from", "ghost", "--to", "ghost2", "hi")
    assert unknown_sender.exit_code == 1 and "404" in unknown_sender.output

    gone = await kolony(served, "tasks", "list", "--url", "http://127.0.0.1:9")
    assert gone.exit_code == 1 and "cannot reach the gateway" in gone.output
