"""A non-Kolony program joins the hub using only docs/protocol.md and a Kafka client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.ids import agent_id_for
from tests.conftest import wait_for

pytestmark = pytest.mark.kafka
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plain_kafka_agent.py"


async def test_plain_kafka_agent_registers_heartbeats_and_leaves(stack: Any) -> None:
    hub = await stack()
    agent_id = agent_id_for("plain-kafka-agent", "1.0.0")
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE),
            "--bootstrap",
            hub.settings.bootstrap_servers,
            "--prefix",
            hub.settings.topic_prefix,
            "--beats",
            "3",
            "--interval",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    await wait_for(
        lambda: hub.hub.directory.get(agent_id), timeout=30, what="the agent in the registry"
    )
    assert (await hub.client.get(f"/agents/{agent_id}")).json()["card"][
        "name"
    ] == "plain-kafka-agent"
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"agent.registered: {agent_id}" in output and "deregistered" in output
    await wait_for(
        lambda: hub.hub.directory.get(agent_id) is None, timeout=20, what="deregistration"
    )
