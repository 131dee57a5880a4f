"""`kolony up` as a user runs it: one command, a working hub, a clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from kolony.broker import free_port

pytestmark = pytest.mark.kafka


def kolony_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOLONY_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def wait_file(path: Path, timeout: float) -> str:
    """`kolony up` writes its addresses once it is serving, just after /health answers."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written within {timeout:g} s"
        time.sleep(0.05)
    return path.read_text()


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


def banner(log: Path, timeout: float = 30) -> str:
    """The output once `kolony up` printed its banner (just after /health turns ok: the
    worker may report ready a moment before its start returns)."""
    deadline = time.monotonic() + timeout
    while "Kolony 0." not in (output := log.read_text()) or "Press Ctrl-C" not in output:
        if time.monotonic() > deadline:
            pytest.fail(f"no banner within {timeout:g} s:\n{output[-3000:]}")
        time.sleep(0.1)
    return output


def start_up(data: Path, log: Path, port: int, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`kolony up` as a user starts it (Kafka on a free port: tests run side by side)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kolony", "up", "--port", str(port), *args],
            env=kolony_env(KOLONY_KAFKA_PORT="0", KOLONY_DATA_DIR=str(data), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop_up(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0, log.read_text()[-3000:]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = tmp_path / "up.log"
    process = start_up(tmp_path / "data", log, port, KOLONY_AGENT_TTL="5")
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
    output = banner(log)
    assert f"gateway  {url}" in output and "Apache Kafka 4.1.1, embedded" in output

    card = {
        "name": "tour-agent",
        "version": "1.0.0",
        "skills": [{"id": "echo", "name": "Echo", "tags": ["demo"]}],
    }
    first = httpx.post(f"{url}/agents", json=card, timeout=10)
    assert first.status_code == 201, first.text
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
    assert str(url) in wait_file(data_dir / "hub.json", 10)
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


def test_a_hub_keeps_everything_across_a_restart_until_fresh(tmp_path: Path) -> None:
    """Stop and start: the agent, the task and the memory key are still there (they are in
    Kafka's log under the data directory); `--fresh` starts over."""
    data, log, port = tmp_path / "data", tmp_path / "up.log", free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_up(data, log, port)
    wait_http(f"{url}/health", timeout=90)
    hub = json.loads(wait_file(data / "hub.json", 10))
    assert hub["url"] == url and hub["embedded_broker"], hub
    card = {"name": "keeper", "version": "1.0.0"}
    created = httpx.post(f"{url}/agents", json=card, timeout=10)
    assert created.status_code == 201, created.text
    assert httpx.post(f"{url}/agents", json=card, timeout=10).status_code == 200  # renewal
    agent_id = created.json()["agent_id"]
    task = httpx.post(f"{url}/tasks", json={"title": "kept", "capability": "x"}, timeout=10)
    assert task.status_code == 201, task.text
    key = httpx.put(f"{url}/memory/kept.key", json={"value": [1, 2]}, timeout=10)
    assert key.status_code == 201, key.text
    again = httpx.put(f"{url}/memory/kept.key", json={"value": [1, 2, 3]}, timeout=10)
    assert again.status_code == 200 and again.json()["version"] == 2, again.text
    asyncio.run(idempotent_and_transactional_producers_work(hub["bootstrap_servers"]))
    stop_up(process, log)
    assert not (data / "hub.json").exists(), "a stopped hub leaves no addresses behind"

    process = start_up(data, log, port)
    try:
        wait_http(f"{url}/health", timeout=90)
        assert httpx.get(f"{url}/agents/{agent_id}", timeout=10).json()["card"]["name"] == "keeper"
        assert httpx.get(f"{url}/tasks/{task.json()['id']}", timeout=10).json()["title"] == "kept"
        assert httpx.get(f"{url}/memory/kept.key", timeout=10).json()["value"] == [1, 2, 3]
    finally:
        stop_up(process, log)

    process = start_up(data, log, port, "--fresh")
    try:
        wait_http(f"{url}/health", timeout=90)
        assert httpx.get(f"{url}/agents/{agent_id}", timeout=10).status_code == 404
        assert httpx.get(f"{url}/memory/kept.key", timeout=10).status_code == 404
    finally:
        stop_up(process, log)
    output = log.read_text()
    assert "deleting" in output and "Traceback" not in output, output[-3000:]


async def idempotent_and_transactional_producers_work(bootstrap: str) -> None:
    idempotent = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    transactional = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="up-test")
    await idempotent.start()
    await transactional.start()
    try:
        await idempotent.send_and_wait("kolony.system", b"idempotent")
        async with transactional.transaction():
            await transactional.send("kolony.system", b"in a transaction")
    finally:
        await idempotent.stop()
        await transactional.stop()


@pytest.mark.parametrize("which", ["gateway", "kafka"])
def test_a_taken_port_stops_up_with_one_line(tmp_path: Path, which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = busy if which == "gateway" else free_port()
        env = {"KOLONY_KAFKA_PORT": str(busy)} if which == "kafka" else {}
        result = subprocess.run(
            [sys.executable, "-m", "kolony", "up", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env=kolony_env(KOLONY_DATA_DIR=str(tmp_path / "data"), **env),
            check=False,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Error: port {busy} is taken" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert ("KOLONY_PORT" if which == "gateway" else "KOLONY_KAFKA_PORT") in result.stderr


def test_no_broker_and_bad_urls_are_one_line_each(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    commands = [
        (["events", "tail"], {"KOLONY_BOOTSTRAP_SERVERS": nowhere}, "cannot reach Kafka"),
        (
            ["replay", "--until", "2026-01-01T00:00:00Z"],
            {"KOLONY_BOOTSTRAP_SERVERS": nowhere},
            "cannot reach Kafka",
        ),
        (["agents", "list", "--url", "localhost:8000"], {}, "bad gateway URL"),
        (["agents", "list"], {"KOLONY_URL": f"http://{nowhere}"}, "cannot reach the gateway"),
    ]
    for args, env, said in commands:
        result = subprocess.run(
            [sys.executable, "-m", "kolony", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=kolony_env(KOLONY_DATA_DIR=str(tmp_path / "none"), **env),
            check=False,
        )
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith(f"Error: {said}"), (args, result.stderr)
        assert result.stderr.count("\n") == 1, (args, result.stderr)


def test_reset_says_what_it_deletes_and_asks(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kolony.cli import main

    data = tmp_path / "data"
    (data / "kafka" / "data").mkdir(parents=True)
    (data / "kafka" / "data" / "segment.log").write_bytes(b"x" * 1000)
    runner = CliRunner()
    env = {"KOLONY_DATA_DIR": str(data)}
    kept = runner.invoke(main, ["reset"], input="n\n", env=env)
    assert kept.exit_code == 1 and data.exists(), kept.output
    assert "every agent, task, message, memory key and app" in kept.output
    gone = runner.invoke(main, ["reset", "--yes"], env=env)
    assert gone.exit_code == 0 and not data.exists(), gone.output
    again = runner.invoke(main, ["reset", "--yes"], env=env)
    assert again.exit_code == 0 and "nothing to delete" in again.output
