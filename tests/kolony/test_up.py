"""`kolony up` as a user runs it: one command, a working hub, a clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kolony.broker import free_port

pytestmark = pytest.mark.kafka


def kolony_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOLONY_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def wait_http(url: str, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer 200 within {timeout:g} s")
        time.sleep(0.2)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kolony", "up", "--port", str(port)],
            env=kolony_env(
                KOLONY_KAFKA_PORT="0",
                KOLONY_AGENT_TTL="5",
                KOLONY_DATA_DIR=str(tmp_path / "data"),
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_up_serves_registers_expires_and_stops_cleanly(
    hub: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    url, process, log = hub
    health = wait_http(f"{url}/health", timeout=60).json()
    assert health["status"] == "ok" and health["workers"]
    output = log.read_text()
    assert f"gateway  {url}" in output and "Apache Kafka 4.1.1, embedded" in output

    card = {
        "name": "tour-agent",
        "version": "1.0.0",
        "skills": [{"id": "echo", "name": "Echo", "tags": ["demo"]}],
    }
    first = httpx.post(f"{url}/agents", json=card, timeout=10)
    assert first.status_code == 200, first.text
    agent_id = first.json()["agent_id"]
    assert httpx.post(f"{url}/agents", json=card, timeout=10).json()["agent_id"] == agent_id
    registered = time.monotonic()

    with httpx.stream(
        "GET", f"{url}/events", params={"follow": "true", "limit": 5}, timeout=10
    ) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        lines = sse.iter_lines()
        assert any(
            line == "event: agent.renewed" for line, _ in zip(lines, range(50), strict=False)
        )

    listed = subprocess.run(
        [sys.executable, "-m", "kolony", "agents", "list", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=kolony_env(),
        check=False,
    )
    assert listed.returncode == 0 and agent_id in listed.stdout and "tour-agent" in listed.stdout

    bootstrap = re.search(r"kafka\s+(127\.0\.0\.1:\d+)", output)
    assert bootstrap, output
    tail = subprocess.run(
        [sys.executable, "-m", "kolony", "events", "tail", "-n", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        env=kolony_env(KOLONY_BOOTSTRAP_SERVERS=bootstrap.group(1)),
        check=False,
    )
    assert tail.returncode == 0, tail.stderr
    assert "agent.registered" in tail.stdout and "agent.renewed" in tail.stdout

    while httpx.get(f"{url}/agents/{agent_id}", timeout=5).json()["status"] != "offline":
        assert time.monotonic() - registered < 8, "not offline within TTL (5 s) + 3 s"
        time.sleep(0.1)

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0, log.read_text()[-3000:]
    assert "Kolony stopped." in log.read_text()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)


def test_the_sdk_example_runs_against_up(hub: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    """The README's tour: `make up`, then `python examples/research_team.py`."""
    url, process, log = hub
    wait_http(f"{url}/health", timeout=60)
    data_dir = log.parent / "data"
    assert str(url) in (data_dir / "hub.json").read_text()
    example = Path(__file__).resolve().parents[2] / "examples" / "research_team.py"
    team = subprocess.run(
        [sys.executable, str(example), "--seconds", "90"],
        capture_output=True,
        text=True,
        timeout=120,
        # Nothing says where Kafka is: the example finds the hub of its data directory.
        env=kolony_env(KOLONY_DATA_DIR=str(data_dir)),
        check=False,
    )
    assert team.returncode == 0, team.stdout + team.stderr
    assert "done: 2 summaries, 1 failed" in team.stdout
    tasks = httpx.get(f"{url}/tasks", timeout=10).json()
    assert tasks["total_size"] == 3
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0


def test_client_commands_fail_with_one_clear_line() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kolony",
            "agents",
            "list",
            "--url",
            f"http://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=kolony_env(),
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot reach the gateway")
    assert "Traceback" not in result.stderr
