"""Real Apache Kafka (KRaft) for tests: the Maven Central jars run with this machine's Java.

The jars are fetched once by Maven (``tests/support/kafka/pom.xml``) into a cache
directory and reused. Where a Docker engine exists, testcontainers' Kafka module can be
used instead (``KOLONY_TEST_KAFKA=docker``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from kolony.broker import free_port

KAFKA_VERSION = "4.1.1"
POM = Path(__file__).parent / "kafka" / "pom.xml"


class KafkaUnavailable(RuntimeError):
    """Real Kafka could not be provided: the tests that need it must fail, not skip."""


def cache_dir() -> Path:
    root = os.environ.get("KOLONY_KAFKA_CACHE") or Path.home() / ".cache" / "kolony"
    return Path(root) / f"kafka-{KAFKA_VERSION}"


def kafka_classpath() -> str:
    """The directory of Kafka's runtime jars, downloaded by Maven on first use."""
    libs = cache_dir() / "libs"
    if not list(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaUnavailable("Maven (mvn) is needed to fetch Apache Kafka from Maven Central")
        staging = Path(
            tempfile.mkdtemp(
                prefix="kafka-libs-",
                dir=cache_dir().parent if cache_dir().parent.exists() else None,
            )
        )
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            raise KafkaUnavailable(
                f"mvn could not fetch Kafka {KAFKA_VERSION}:\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        libs.parent.mkdir(parents=True, exist_ok=True)
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
    return f"{libs}/*"


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaCluster:
    """``nodes`` combined broker+controller KRaft nodes on loopback."""

    def __init__(self, nodes: int = 1, heap_mb: int = 512) -> None:
        self.nodes = nodes
        self.heap_mb = heap_mb
        self.workdir = Path(tempfile.mkdtemp(prefix="kolony-kafka-"))
        self.broker_ports = [free_port() for _ in range(nodes)]
        self.controller_ports = [free_port() for _ in range(nodes)]
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * nodes

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.broker_ports)

    def _properties(self, index: int) -> Path:
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(self.controller_ports))
        rf = min(3, self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(index + 1),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.broker_ports[index]},CONTROLLER://127.0.0.1:{self.controller_ports[index]}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.broker_ports[index]}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.workdir / f"node-{index + 1}"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.cleaner.backoff.ms": "1000",
        }
        path = self.workdir / f"server-{index + 1}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _java(self, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise KafkaUnavailable("Java 17+ is needed to run Apache Kafka")
        return [
            java,
            f"-Xmx{self.heap_mb}m",
            f"-Xms{min(256, self.heap_mb)}m",
            "-XX:+UseSerialGC",
            "-cp",
            kafka_classpath(),
            *args,
        ]

    def start(self, timeout: float = 90.0) -> str:
        cluster_id = _cluster_id()
        for index in range(self.nodes):
            props = self._properties(index)
            result = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(props),
                ),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if result.returncode != 0:
                raise KafkaUnavailable(
                    f"formatting Kafka storage failed: {result.stdout}{result.stderr}"
                )
        for index in range(self.nodes):
            self.start_node(index)
        self.wait_ready(timeout)
        return self.bootstrap_servers

    def start_node(self, index: int) -> None:
        log = open(self.workdir / f"node-{index + 1}.log", "ab")  # noqa: SIM115
        try:
            self._processes[index] = subprocess.Popen(
                self._java("kafka.Kafka", str(self.workdir / f"server-{index + 1}.properties")),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    def stop_node(self, index: int, kill: bool = False) -> None:
        process, self._processes[index] = self._processes[index], None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for index, port in enumerate(self.broker_ports):
            while True:
                process = self._processes[index]
                if process is not None and process.poll() is not None:
                    log = (self.workdir / f"node-{index + 1}.log").read_text(errors="replace")
                    raise KafkaUnavailable(f"Kafka node {index + 1} exited:\n{log[-4000:]}")
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.5),
                ):
                    break
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        f"Kafka node {index + 1} did not listen within {timeout:g} s"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop every node at once (one by one, the last would wait for a lost quorum)."""
        running = [p for p in self._processes if p is not None and p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + 15
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes = [None] * self.nodes
        shutil.rmtree(self.workdir, ignore_errors=True)


class DockerKafka:
    """testcontainers' Kafka module (KRaft), where a Docker engine exists."""

    def __init__(self) -> None:
        from testcontainers.kafka import KafkaContainer

        self._container = KafkaContainer().with_kraft()

    def start(self, timeout: float = 120.0) -> str:
        self._container.start()
        self.bootstrap_servers: str = self._container.get_bootstrap_server()
        return self.bootstrap_servers

    def stop(self) -> None:
        self._container.stop()


def docker_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return (
        subprocess.run([docker, "info"], capture_output=True, timeout=20, check=False).returncode
        == 0
    )
