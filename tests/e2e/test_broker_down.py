"""When Kafka goes away the gateway answers 503 quickly: it never hangs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from kolony.broker import EmbeddedKafka
from kolony.kafka import ensure_topics
from kolony.settings import Settings
from services.gateway.app import create_app
from services.hub import Hub, HubUnavailable
from tests.support.kafka_cluster import KafkaCluster
from tests.support.processes import KolonyProcess

pytestmark = pytest.mark.kafka


async def test_gateway_answers_503_when_the_broker_dies(tmp_path: Path) -> None:
    broker = EmbeddedKafka(tmp_path / "kafka", 0)
    settings = Settings(
        bootstrap_servers=broker.start(),
        topic_prefix="down",
        partitions=2,
        command_timeout=2,
    )
    try:
        await ensure_topics(settings)
        hub = Hub(settings)
        await hub.start()
        transport = httpx.ASGITransport(app=create_app(settings, hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://kolony") as client:
            broker.stop()
            started = time.monotonic()
            response = await client.post("/agents", json={"name": "a", "version": "1"})
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert time.monotonic() - started < 10
        await hub.stop()
    finally:
        broker.stop()


async def test_hub_refuses_to_start_without_kafka() -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="none")
    hub = Hub(settings)
    with pytest.raises(HubUnavailable, match="cannot reach Kafka"):
        await hub.start()


def test_a_worker_whose_brokers_are_gone_still_stops(
    tmp_path: Path, three_brokers: KafkaCluster
) -> None:
    """SIGTERM with no broker left: the worker cannot commit or leave its group, and waited
    for a cluster that was gone (more than a minute, measured). It gives up after its stop
    timeout and 10 s more instead. Nothing is lost: what it did not commit is decided again
    by the next worker."""
    settings = Settings(
        bootstrap_servers=three_brokers.bootstrap_servers,
        topic_prefix="gone",
        partitions=3,
        replication_factor=3,
        data_dir=tmp_path / "data",
        stop_timeout=3,
    )
    worker = KolonyProcess(["worker", "--log-level", "info"], settings, tmp_path / "worker.log")
    try:
        asyncio.run(ensure_topics(settings))
        worker.start()
        deadline = time.monotonic() + 60
        while "registry recovered" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.2)
        three_brokers.stop()
        started = time.monotonic()
        worker.terminate(60)  # fails (and kills it) if it is still there after 60 s
        assert time.monotonic() - started < 3 + 10 + 15, worker.log()[-2000:]
    finally:
        worker.kill()
