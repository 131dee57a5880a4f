"""Several workers share the partitions; when one dies the others take over its agents."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from kolony.partitioning import partition_for
from tests.conftest import wait_for
from tests.e2e.test_registry import card

pytestmark = pytest.mark.kafka


async def test_two_workers_split_the_partitions_and_both_decide(stack: Any) -> None:
    hub = await stack(workers=2, agent_ttl=2, partitions=6)

    def owners() -> dict[str, tuple[int, ...]]:
        return {
            w.worker_id: w.active_partitions for w in hub.hub.live_workers() if w.active_partitions
        }

    def split() -> bool:
        # Beacons are a few seconds apart: one from before the rebalance may still list the
        # partitions its worker has just given away.
        found = list(owners().values())
        return len(found) == 2 and sorted(found[0] + found[1]) == list(range(6))

    await wait_for(
        split,
        timeout=60,
        what="both workers owning partitions, each partition once",
        detail=lambda: str(owners()),
    )

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


def ids_covering(partitions: int, prefix: str) -> list[str]:
    """One id per partition (as Kafka's partitioner places it)."""
    chosen: dict[int, str] = {}
    i = 0
    while len(chosen) < partitions:
        candidate = f"{prefix}-{i}"
        chosen.setdefault(partition_for(candidate.encode(), partitions), candidate)
        i += 1
    return list(chosen.values())


async def test_when_a_worker_dies_the_survivor_takes_over_every_partition(
    stack: Any, start_worker: Any
) -> None:
    hub = await stack(workers=2, partitions=6)
    client = hub.client
    await wait_for(
        lambda: sum(1 for w in hub.hub.live_workers() if w.active_partitions) == 2,
        timeout=60,
        what="both workers owning partitions",
    )
    doer = (await client.post("/agents", json=card("doer"))).json()["agent_id"]
    before = ids_covering(6, "before")
    for task_id in before:
        answer = await client.post("/tasks", json={"id": task_id, "assignee_id": doer})
        assert answer.status_code == 201, answer.text

    victim, survivor = start_worker.started
    victim.kill()
    await wait_for(
        lambda: any(len(w.active_partitions) == 6 for w in hub.hub.live_workers()),
        timeout=60,
        what="the survivor to own every partition",
    )
    # Every partition is decided again: finish the old tasks, create new ones.
    for task_id in before:
        done = await client.post(f"/tasks/{task_id}/complete", json={"result": task_id})
        assert done.status_code == 200, (done.text, survivor.log()[-3000:])
    for task_id in ids_covering(6, "after"):
        answer = await client.post("/tasks", json={"id": task_id, "assignee_id": doer})
        assert answer.status_code == 201, (answer.text, survivor.log()[-3000:])
