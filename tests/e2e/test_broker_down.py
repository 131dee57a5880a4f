"""When Kafka goes away the gateway answers 503 quickly: it never hangs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from kolony.broker import EmbeddedKafka
from kolony.kafka import ensure_topics
from kolony.settings import Settings
from services.gateway.app import create_app
from services.hub import Hub, HubUnavailable

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
