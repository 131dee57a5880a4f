"""The operator script publishes validated commands; the hub decides them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.ids import agent_id_for
from tests.conftest import wait_for
from tests.support.processes import settings_env

pytestmark = pytest.mark.kafka


def run(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producers.msk_producer", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_register_heartbeat_deregister_and_dry_run(stack: Any, tmp_path: Path) -> None:
    hub = await stack()
    agent_id = agent_id_for("ops-agent", "2")
    dry = run(hub.settings, "register", "--name", "ops-agent", "--version", "2", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("(dry run)")
    published = run(
        hub.settings,
        "register",
        "--name",
        "ops-agent",
        "--version",
        "2",
        "--skill",
        "ops:maintenance",
    )
    assert published.returncode == 0, published.stderr
    assert "published agent.register" in published.stdout and agent_id in published.stdout
    await wait_for(lambda: hub.hub.directory.get(agent_id), timeout=20, what="registration")
    assert run(hub.settings, "heartbeat", agent_id, "--status", "busy").returncode == 0
    await wait_for(
        lambda: hub.hub.directory.get(agent_id).status == "busy", timeout=20, what="busy"
    )

    bad = run(hub.settings, "heartbeat", "not an id")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: invalid agent_id")
    lines = tmp_path / "commands.jsonl"
    lines.write_text('{"type": "agent.deregister", "command_id": "x"}\n')
    assert run(hub.settings, "file", str(lines)).stderr.startswith(f"Error: {lines}:1: invalid")

    assert run(hub.settings, "deregister", agent_id, "--reason", "done").returncode == 0
    await wait_for(
        lambda: hub.hub.directory.get(agent_id) is None, timeout=20, what="deregistration"
    )
