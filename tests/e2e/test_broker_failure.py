"""A three-broker Kafka cluster loses a broker: the hub keeps deciding and loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.test_recovery import rebuilt_from_events, table_from_changelog
from tests.e2e.test_registry import card
from tests.support.kafka_cluster import KafkaCluster

pytestmark = pytest.mark.kafka


async def register(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """Register, retrying while the cluster elects new leaders (a 503 says: try again).

    A 503 means the gateway could not confirm the command in time, not that it was
    dropped: a retry of one that was decided meanwhile answers 200 (already registered).
    """
    for _ in range(40):
        response = await client.post("/agents", json=card(name))
        if response.status_code in (200, 201):
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code == 503, response.text
        await asyncio.sleep(0.5)
    pytest.fail(f"{name} was never registered")


async def test_losing_one_of_three_brokers_loses_nothing(
    stack: Any, three_brokers: KafkaCluster
) -> None:
    hub = await stack(
        bootstrap_servers=three_brokers.bootstrap_servers, replication_factor=3, partitions=3
    )
    before = [await register(hub.client, f"before-{i}") for i in range(10)]
    three_brokers.stop_node(1, kill=True)
    after = [await register(hub.client, f"after-{i}") for i in range(10)]

    ids = {a["agent_id"] for a in before + after}
    listed = {a["agent_id"] for a in (await hub.client.get("/agents")).json()["agents"]}
    assert ids <= listed

    async def consistent() -> bool:
        table = await table_from_changelog(hub.settings)
        return ids <= set(table) and table == await rebuilt_from_events(hub.settings)

    await wait_for(consistent, timeout=60, what="the changelog to hold every agent", interval=1)
