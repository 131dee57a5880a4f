"""Shared fixtures: one Apache Kafka per test session; a topic prefix per test."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from kolony.broker import warm_up
from kolony.kafka import ensure_topics
from kolony.settings import Settings
from services.gateway.app import create_app
from services.hub import Hub
from tests.support.kafka_cluster import DockerKafka, KafkaCluster, docker_available
from tests.support.processes import KolonyProcess


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """Apache Kafka, started as `kolony up` starts it (or in Docker where asked for).
    Never skipped: if it cannot start, the tests using it fail."""
    if os.environ.get("KOLONY_TEST_KAFKA") == "docker" and docker_available():
        cluster: KafkaCluster | DockerKafka = DockerKafka()
    else:
        warm_up()  # every broker the tests start then starts in about a second
        cluster = KafkaCluster(1)
    yield cluster.start()
    cluster.stop()


@pytest.fixture(scope="module")
def three_brokers() -> Iterator[KafkaCluster]:
    """A cluster of three Kafka nodes for a module's tests (one of them may be killed). It
    outlives each test's processes, so that they stop cleanly before it does."""
    cluster = KafkaCluster(3, heap_mb=384)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def broker(kafka_broker: str) -> str:
    """The bootstrap servers of the session's Kafka."""
    return kafka_broker


@pytest.fixture
def make_settings(broker: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on this test's own topics (a fresh prefix) on the session's Kafka."""
    prefix = f"t{uuid.uuid4().hex[:10]}"

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "bootstrap_servers": broker,
            "topic_prefix": prefix,
            "partitions": 4,
            "data_dir": tmp_path / "data",
            "fetch_max_wait_ms": 100,
            "agent_ttl": 60,
            "liveness_interval": 0.2,
            "beacon_interval": 0.5,
            "session_timeout": 6,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def start_worker(tmp_path: Path) -> AsyncIterator[Callable[[Settings], KolonyProcess]]:
    started: list[KolonyProcess] = []

    def start(settings: Settings) -> KolonyProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        process = KolonyProcess(["worker", "--log-level", "info"], settings, log).start()
        started.append(process)
        return process

    start.started = started  # type: ignore[attr-defined]
    yield start
    for process in started:
        if process.process is not None and process.process.poll() is None:
            process.terminate()


class Stack:
    """A gateway in this process (ASGI) over a hub, and the worker processes behind it."""

    def __init__(self, settings: Settings, hub: Hub, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.hub = hub
        self.client = client


@pytest.fixture
async def stack(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], KolonyProcess],
) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    hubs: list[Hub] = []
    clients: list[httpx.AsyncClient] = []

    async def make(workers: int = 1, **overrides: Any) -> Stack:
        settings = make_settings(**overrides)
        await ensure_topics(settings)
        for _ in range(workers):
            start_worker(settings)
        hub = Hub(settings)
        await hub.start()
        hubs.append(hub)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(settings, hub)), base_url="http://kolony"
        )
        clients.append(client)
        if workers:
            await wait_for(
                lambda: _all_partitions_owned(hub, settings),
                timeout=90,
                what="workers to own every partition",
            )
        return Stack(settings, hub, client)

    yield make
    for client in clients:
        await client.aclose()
    for hub in hubs:
        await hub.stop()


class Served:
    """A stack whose gateway also listens on a real port, as users and agents reach it."""

    def __init__(self, stack: Stack, url: str) -> None:
        self.stack = stack
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])


@pytest.fixture
async def served(stack: Callable[..., Awaitable[Stack]]) -> AsyncIterator[Served]:
    """One stack (a worker, a hub) with its gateway served over HTTP on a free port."""
    hub = await stack()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(hub.settings, hub.hub),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=10, what="the gateway to listen")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(hub, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await serving


def _all_partitions_owned(hub: Hub, settings: Settings) -> bool:
    owned = {p for w in hub.live_workers() for p in w.active_partitions}
    return owned == set(range(settings.partitions))


async def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll ``condition`` (sync or async) until truthy; fail with ``what`` after ``timeout``
    (and ``detail()``, whatever helps to understand the failure)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail else ""
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}{extra}")
        await asyncio.sleep(interval)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: the real-Kafka tests must run, not skip."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(
                f"CI: {skipped} test(s) skipped; every test must run in CI", red=True
            )
