"""Kolony processes started by tests exactly as users start them: ``python -m kolony ...``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kolony.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process see ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOLONY_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        secret = getattr(value, "get_secret_value", None)
        env[f"KOLONY_{name.upper()}"] = str(secret() if secret else value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class KolonyProcess:
    """``python -m kolony <args>`` (or another ``module``) with ``settings`` in its environment."""

    def __init__(
        self, args: list[str], settings: Settings, log_path: Path, module: str = "kolony"
    ) -> None:
        self.args = args
        self.module = module
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> KolonyProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                env=settings_env(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; a process that does not stop in time is killed (never left
        running), and that is an error."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"`{' '.join(self.args)}` did not stop within {timeout:g} s of SIGTERM; killed"
            ) from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_health(url: str, timeout: float) -> None:
    """Until ``url``/health answers 200 (a hub that is ready); TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}/health not ready in {timeout:g} s")
