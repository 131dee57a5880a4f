"""A non-Kolony program joins the hub using only docs/protocol.md and a Kafka client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.ids import agent_id_for
from tests.conftest import wait_for

pytestmark = pytest.mark.kafka
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plain_kafka_agent.py"


async def test_plain_kafka_agent_registers_takes_tasks_and_leaves(
    stack: Any, tmp_path: Path
) -> None:
    hub = await stack()
    agent_id = agent_id_for("plain-kafka-agent", "1.0.0")
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--bootstrap",
                hub.settings.bootstrap_servers,
                "--prefix",
                hub.settings.topic_prefix,
                "--tasks",
                "2",
                "--interval",
                "0.3",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await run_with(hub, agent_id, process, log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def run_with(hub: Any, agent_id: str, process: Any, log: Path) -> None:
    await wait_for(
        lambda: hub.hub.directory.get(agent_id),
        timeout=30,
        what="the agent in the registry",
        detail=log.read_text,
    )
    assert (await hub.client.get(f"/agents/{agent_id}")).json()["card"][
        "name"
    ] == "plain-kafka-agent"
    words = ["stressed", "drawer"]
    created = [
        (await hub.client.post("/tasks", json={"capability": "reverse", "input": {"text": w}}))
        for w in words
    ]
    assert all(c.status_code == 201 for c in created), [c.text for c in created]
    assert {c.json()["assignee_id"] for c in created} == {agent_id}
    await wait_for(
        lambda: process.poll() is not None,
        timeout=60,
        what="the agent to finish",
        detail=log.read_text,
    )
    output = log.read_text()  # noqa: ASYNC240 - a small file, read once
    assert process.returncode == 0, output
    assert f"agent.registered: {agent_id}" in output and "deregistered" in output
    for answer, word in zip(created, words, strict=True):
        task_id = answer.json()["id"]
        await wait_for(
            lambda: hub.hub.board.get(task_id).status.state == "completed",  # noqa: B023
            timeout=10,
            what="the gateway to see the task completed",
        )
        task = (await hub.client.get(f"/tasks/{task_id}")).json()
        assert task["result"] == {"text": word[::-1]}
        assert task["history"][-1]["parts"][0]["text"] == "reversing"
    await wait_for(
        lambda: hub.hub.directory.get(agent_id) is None, timeout=20, what="deregistration"
    )
