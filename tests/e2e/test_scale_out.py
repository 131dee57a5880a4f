"""Several workers share the partitions; when one dies the others take over its agents."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.test_registry import card

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("broker", ["kafka"], indirect=True)
async def test_two_workers_split_the_work_and_survive_one_death(
    stack: Any, start_worker: Any
) -> None:
    hub = await stack(workers=2, agent_ttl=3, partitions=6)

    def owners() -> dict[str, tuple[int, ...]]:
        return {
            w.worker_id: w.active_partitions for w in hub.hub.live_workers() if w.active_partitions
        }

    await wait_for(lambda: len(owners()) == 2, timeout=60, what="both workers owning partitions")
    shares = list(owners().values())
    assert not set(shares[0]) & set(shares[1]), "a partition has two owners"

    agents = [
        (await hub.client.post("/agents", json=card(f"agent-{i}"))).json()["agent_id"]
        for i in range(12)
    ]
    start_worker.started[0].kill()

    async def keep_alive() -> None:
        while True:
            for agent_id in agents[::2]:
                await hub.client.post(f"/agents/{agent_id}/heartbeat")
            await asyncio.sleep(0.5)

    pulse = asyncio.create_task(keep_alive())
    try:
        await wait_for(
            lambda: len(owners()) == 1 and sorted(next(iter(owners().values()))) == list(range(6)),
            timeout=60,
            what="the surviving worker to own every partition",
        )
        await wait_for(
            lambda: all(hub.hub.directory.get(a).status == "offline" for a in agents[1::2]),
            timeout=20,
            what="the silent agents, whoever owned them, to go offline",
        )
        assert all(hub.hub.directory.get(a).status == "online" for a in agents[::2])
    finally:
        pulse.cancel()

    expiries = Counter(
        (e.agent_id, e.seq) for e in hub.hub.feed.recent(10_000) if e.type == "agent.expired"
    )
    assert expiries and max(expiries.values()) == 1, (
        "an agent was expired twice (two timers acted on it)"
    )


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_rocksdb_store_survives_a_restart(stack: Any, start_worker: Any) -> None:
    hub = await stack(store="rocksdb")
    first = (await hub.client.post("/agents", json=card("durable"))).json()
    old = {w.worker_id for w in hub.hub.live_workers()}
    assert start_worker.started[0].terminate() == 0, start_worker.started[0].log()[-2000:]
    start_worker(hub.settings)

    def restarted() -> bool:
        fresh = [w for w in hub.hub.live_workers() if w.worker_id not in old]
        return bool(fresh) and len(fresh[0].active_partitions) == hub.settings.partitions

    await wait_for(restarted, timeout=60, what="the restarted worker to own every partition")
    again = await hub.client.post("/agents", json=card("durable"))
    assert again.status_code == 200 and again.json()["registered_at"] == first["registered_at"]
    last = [
        e for e in hub.hub.feed.recent(100) if getattr(e, "agent_id", None) == first["agent_id"]
    ][-1]
    assert last.type == "agent.renewed", start_worker.started[1].log()[-8000:]
    assert any((hub.settings.data_dir / "worker").rglob("*.db")) or any(
        (hub.settings.data_dir / "worker").rglob("CURRENT")
    )
