"""Several workers share the partitions; when one dies the others take over its agents."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.test_registry import card

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("broker", ["kafka"], indirect=True)
async def test_two_workers_split_the_partitions_and_both_decide(stack: Any) -> None:
    hub = await stack(workers=2, agent_ttl=2, partitions=6)

    def owners() -> dict[str, tuple[int, ...]]:
        return {
            w.worker_id: w.active_partitions for w in hub.hub.live_workers() if w.active_partitions
        }

    await wait_for(lambda: len(owners()) == 2, timeout=60, what="both workers owning partitions")
    first, second = owners().values()
    assert not set(first) & set(second), "a partition has two owners"
    assert sorted(first + second) == list(range(6))

    agents = [
        (await hub.client.post("/agents", json=card(f"agent-{i}"))).json()["agent_id"]
        for i in range(12)
    ]
    # Every agent expires exactly once, decided by whichever worker owns it.
    await wait_for(
        lambda: all(hub.hub.directory.get(a).status == "offline" for a in agents),
        timeout=20,
        what="every agent, whoever owns it, to go offline",
    )
    expiries = Counter(
        (e.agent_id, e.seq) for e in hub.hub.feed.recent(10_000) if e.type == "agent.expired"
    )
    assert len(expiries) == 12 and max(expiries.values()) == 1
    decided = [w.commands_decided for w in hub.hub.live_workers()]
    assert len(decided) == 2 and all(decided), "both workers decided commands"


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
