"""An agent in another language (Node.js, kafkajs) joins from docs/protocol.md alone.

kafkajs cannot assign a partition, so the agent takes its inbox as the protocol's section on
clients with only consumer groups says. Needs Node.js and npm (the CI machine has them).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.support.processes import settings_env

pytestmark = pytest.mark.kafka
AGENT = Path(__file__).resolve().parents[2] / "examples" / "node"


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed for the Node.js agent")
    installed = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=AGENT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return node


async def test_a_nodejs_agent_registers_takes_a_task_and_leaves(
    stack: Any, node: str, tmp_path: Path
) -> None:
    hub = await stack()
    log = tmp_path / "node.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [node, "agent.js", "--tasks", "1"],
            cwd=AGENT,
            env=settings_env(hub.settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await wait_for(
            lambda: hub.hub.directory.get("node-agent-1"),
            timeout=60,
            what="the Node.js agent in the registry",
            detail=log.read_text,
        )
        created = await hub.client.post(
            "/tasks", json={"capability": "shout", "input": {"text": "hello from python"}}
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        async def completed() -> Any:
            task = (await hub.client.get(f"/tasks/{task_id}")).json()
            return task if task["status"]["state"] == "completed" else None

        task = await wait_for(completed, timeout=30, what="the task", detail=log.read_text)
        assert task["result"] == {"text": "HELLO FROM PYTHON"}
        assert task["assignee_id"] == "node-agent-1"
        await wait_for(lambda: process.poll() is not None, timeout=30, what="the agent to leave")
        assert process.returncode == 0, log.read_text()
        assert "deregistered" in log.read_text()

        async def gone() -> bool:
            agent = (await hub.client.get("/agents/node-agent-1")).status_code
            return agent == 404

        await wait_for(gone, timeout=30, what="the deregistration")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
