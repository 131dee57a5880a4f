"""The SDK examples run as users run them: ``python examples/<name>.py`` against a hub."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kolony.broker import free_port
from schemas.ids import agent_id_for
from tests.conftest import wait_for
from tests.e2e.test_registry import card
from tests.support.processes import settings_env

pytestmark = pytest.mark.kafka
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def launch(hub: Any, script: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), *args],
            env=settings_env(hub.settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def finished(process: subprocess.Popen[bytes], log: Path, within: float) -> str:
    await wait_for(
        lambda: process.poll() is not None, timeout=within, what="the example", detail=log.read_text
    )
    output = log.read_text()  # noqa: ASYNC240 - a small file, read once
    assert process.returncode == 0, output
    return output


async def test_research_team_delegates_by_capability(stack: Any, tmp_path: Path) -> None:
    hub = await stack()
    log = tmp_path / "team.log"
    process = launch(hub, "research_team.py", log, "--seconds", "90")
    try:
        output = await finished(process, log, 120)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert output.count("summary (") == 2, output
    assert "Kafka keeps an ordered log per partition." in output
    assert "failed: ValueError: nothing to summarize" in output
    assert "done: 2 summaries, 1 failed" in output
    tasks = (await hub.client.get("/tasks", params={"limit": 10})).json()["tasks"]
    summarizer = agent_id_for("research-summarizer", "1.0.0")
    assert len(tasks) == 3 and {t["assignee_id"] for t in tasks} == {summarizer}
    assert sorted(t["status"]["state"] for t in tasks) == ["completed", "completed", "failed"]


async def test_librarian_catalogues_with_compare_and_set_and_answers(
    stack: Any, tmp_path: Path
) -> None:
    hub = await stack()
    client = hub.client
    log = tmp_path / "librarian.log"
    librarian = agent_id_for("librarian", "1.0.0")
    process = launch(hub, "librarian.py", log, "--seconds", "120")
    try:
        await wait_for(
            lambda: hub.hub.directory.get(librarian),
            timeout=30,
            what="the librarian to register",
            detail=log.read_text,
        )
        titles = ["Dune", "Emma", "Ulysses", "Dune"]  # one twice: catalogued once
        created = await asyncio.gather(
            *(
                client.post("/tasks", json={"capability": "catalogue", "input": {"title": t}})
                for t in titles
            )
        )
        ids = [c.json()["id"] for c in created]

        async def all_done() -> bool:
            states = [(await client.get(f"/tasks/{i}")).json()["status"]["state"] for i in ids]
            return all(s == "completed" for s in states)

        await wait_for(all_done, timeout=60, what="the catalogue tasks", detail=log.read_text)
        catalogue = (await client.get("/memory/library.catalogue")).json()
        assert catalogue["value"] == ["Dune", "Emma", "Ulysses"]
        assert catalogue["version"] == 3, "three writes: the duplicate changed nothing"

        reader = (await client.post("/agents", json=card("reader"))).json()["agent_id"]
        asked = await client.post(
            "/messages", json={"from": reader, "to": librarian, "content": "count"}
        )
        assert asked.status_code == 201, asked.text

        async def answered() -> Any:
            got = (await client.get(f"/agents/{reader}/messages")).json()
            return [m["record"] for m in got if m["record"]["sender_id"] == librarian]

        [answer] = await wait_for(answered, timeout=30, what="the librarian's answer")
        assert answer["message"]["parts"][0]["text"] == "3 books: Dune, Emma, Ulysses"

        await client.put(
            "/memory/library.hours", json={"value": "9-5", "agent_id": reader}
        )  # someone else writes under library.: the librarian notices
        await wait_for(
            lambda: "library.hours is at version 1" in log.read_text(),
            timeout=30,
            what="the memory notification",
            detail=log.read_text,
        )
        # A broadcast nobody can answer (from the operator): read, one line, no traceback.
        news = await client.post(
            "/messages",
            json={"broadcast": True, "content": "maintenance at 17:00", "message_type": "system"},
        )
        assert news.status_code == 201, news.text
        await wait_for(
            lambda: "heard from operator: maintenance at 17:00" in log.read_text(),
            timeout=30,
            what="the librarian to hear the broadcast",
            detail=log.read_text,
        )
        process.send_signal(signal.SIGTERM)
        output = await finished(process, log, 30)
        assert "librarian stopped" in output
        assert "Traceback" not in output and "handler failed" not in output, output
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()

    async def gone() -> bool:
        return (await client.get(f"/agents/{librarian}")).status_code == 404

    await wait_for(gone, timeout=10, what="the librarian to deregister on SIGTERM")


async def test_the_notebook_app_registers_itself_and_serves_through_the_hub(
    served: Any, tmp_path: Path
) -> None:
    """``python examples/notebook_app.py --hub <url>``, as the README's tour runs it."""
    port = free_port()
    log = tmp_path / "notebook.log"
    process = launch(served.stack, "notebook_app.py", log, "--port", str(port), "--hub", served.url)
    client = served.stack.client
    try:

        async def registered() -> Any:
            apps = (await client.get("/apps")).json()["apps"]
            return next((a for a in apps if a["name"] == "notebook" and a["tools"]), None)

        app = await wait_for(registered, timeout=60, what="the app", detail=log.read_text)
        assert app["health_check_url"] == f"http://127.0.0.1:{port}/health"
        agent = (await client.post("/agents", json=card("note-taker"))).json()["agent_id"]
        body = {"tool_name": "note_add", "arguments": {"text": "hi"}, "agent_id": agent}
        added = await client.post(f"/apps/{app['app_id']}/execute", json=body)
        assert added.json()["result"]["structuredContent"] == {"count": 1}, added.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert f"registered with {served.url} as app {app['app_id']}" in log.read_text()
