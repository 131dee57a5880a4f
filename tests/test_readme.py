"""The README's tour, run as a user runs it: its commands, in order, against `kolony up`.

The commands are read from the README itself (the bash block under "## A tour"), so the
tour cannot drift from what works. Each must succeed, and where the README shows part of
an answer (a `# →` line under the command) the answer must contain it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from kolony.broker import free_port

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]
MARK = "@@kolony-tour-step"


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def tour_steps(readme: str) -> list[Step]:
    """The commands of the tour's bash block, each with the answers shown under it."""
    section = readme.split("## A tour", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "the tour has no bash block"
    steps: list[Step] = []
    pending = ""
    for line in block.group(1).splitlines():
        if pending:
            pending += "\n" + line
        elif line.startswith("# →"):
            steps[-1].expected.append(line.removeprefix("# →").strip())
            continue
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        else:
            pending = line
        # A command goes on while its line ends with a backslash or a quote is open.
        if not pending.endswith("\\") and pending.count("'") % 2 == 0:
            steps.append(Step(pending))
            pending = ""
    assert not pending, f"the tour ends inside a command: {pending}"
    return steps


def contains(output: str, expected: str) -> bool:
    """Whether ``output`` has the parts of ``expected`` (split at "…") in that order."""
    position = 0
    for part in expected.split("…"):
        found = output.find(part.strip(), position)
        if found < 0:
            return False
        position = found + len(part.strip())
    return True


def test_the_readme_is_read_into_steps() -> None:
    steps = tour_steps((ROOT / "README.md").read_text())
    assert len(steps) > 30
    assert steps[0].command.startswith("field() {") and steps[0].command.endswith("}")
    assert all(step.command.strip() for step in steps)
    assert sum(len(step.expected) for step in steps) > 25
    assert contains("a b c", "a…c") and not contains("a b c", "c…a")


def kolony_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOLONY_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`kolony up` on free ports, its data directory in ``tmp_path``."""
    port = free_port()
    data = tmp_path / "data"
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kolony", "up", "--port", str(port)],
            env=kolony_env(KOLONY_KAFKA_PORT="0", KOLONY_DATA_DIR=str(data)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no healthy hub: " + log.read_text()[-3000:]
            time.sleep(0.2)
        while not (data / "hub.json").exists():  # written just after /health answers
            assert time.monotonic() < deadline, "no addresses: " + log.read_text()[-3000:]
            time.sleep(0.05)
        yield url, data
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_readme_tour_runs_top_to_bottom(hub: tuple[str, Path], tmp_path: Path) -> None:
    url, data = hub
    steps = tour_steps((ROOT / "README.md").read_text())
    # The tour's own place: the repository's `.venv` and `examples`, as the README says.
    here = tmp_path / "checkout"
    here.mkdir()
    (here / ".venv").symlink_to(Path(sys.prefix))
    (here / "examples").symlink_to(ROOT / "examples")
    app_port = str(free_port())
    script = []
    for number, step in enumerate(steps):
        command = step.command.replace("localhost:8000", url.removeprefix("http://"))
        command = command.replace("--port 8100", f"--port {app_port}")
        script += [command, f'printf "\\n{MARK} {number} rc=%d\\n" $?']
    # Only the data directory says where the hub is: the CLI, the SDK and the examples
    # find the gateway and Kafka through the addresses `kolony up` wrote there.
    env = kolony_env(KOLONY_DATA_DIR=str(data))
    with subprocess.Popen(
        ["bash", "-c", "\n".join(script)],
        cwd=here,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as tour:
        try:
            output, _ = tour.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            os.killpg(tour.pid, signal.SIGKILL)
            output, _ = tour.communicate()
            pytest.fail(f"the tour did not finish within 400 s:\n{output[-5000:]}")
        finally:
            if tour.poll() is None:
                os.killpg(tour.pid, signal.SIGKILL)
    # [answer 0, "0", rc 0, answer 1, "1", rc 1, ..., what came after the last step]
    parts = re.split(rf"\n{MARK} (\d+) rc=(\d+)\n", "\n" + output)
    done = {int(parts[i + 1]): (int(parts[i + 2]), parts[i]) for i in range(0, len(parts) - 2, 3)}
    for number, step in enumerate(steps):
        assert number in done, f"step {number} never ran: {step.command}\n{output[-5000:]}"
        rc, answer = done[number]
        assert rc == 0, f"step {number} failed ({rc}): {step.command}\n{answer[-3000:]}"
        for expected in step.expected:
            assert contains(answer, expected), (
                f"step {number}: {step.command}\nexpected {expected!r} in:\n{answer[-3000:]}"
            )
