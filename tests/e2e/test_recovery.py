"""Nothing is lost when the worker dies, and the tables are exactly the fold of the event log."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from core import registry, tasks
from kolony.kafka import client_options, consumer_options, read_backlog
from kolony.settings import Settings
from schemas.a2a import AgentCard
from schemas.ids import agent_id_for
from schemas.registry import AGENT_EVENT, AGENT_STATE, AgentState, RegisterAgent
from schemas.tasks import TASK_ENTRY, TASK_EVENT, SubmitTask, TaskEntry
from schemas.topics import AGENTS_TABLE, TASKS_TABLE
from tests.conftest import _all_partitions_owned, wait_for
from tests.e2e.test_registry import card
from tests.support.processes import KolonyProcess

pytestmark = pytest.mark.kafka


async def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic``, from offset 0 to its current end."""
    consumer = AIOKafkaConsumer(**consumer_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return await read_backlog(consumer, await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def fold_log(settings: Settings, topic: str, adapter: Any, decider: Any) -> dict[str, Any]:
    """Each entity's state, folded from ``topic`` with ``decider``'s own ``evolve``."""
    states: dict[str, Any] = {}
    records = await read_topic(settings, topic)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = adapter.validate_json(record.value)
        key = record.key.decode()
        if event.type != "command.rejected":
            states[key] = decider.evolve(states.get(key, decider.initial_state()), event)
    return states


async def rebuilt_from_events(settings: Settings) -> dict[str, AgentState]:
    return await fold_log(settings, settings.topics.agent_events, AGENT_EVENT, registry)


async def tasks_from_events(settings: Settings) -> dict[str, TaskEntry]:
    return await fold_log(settings, settings.topics.task_events, TASK_EVENT, tasks)


async def changelog_of(settings: Settings, table: str, adapter: Any) -> dict[str, Any]:
    return {
        record.key.decode(): adapter.validate_json(record.value)
        for record in await read_topic(settings, settings.topics.changelog(table))
    }


async def tasks_from_changelog(settings: Settings) -> dict[str, TaskEntry]:
    return await changelog_of(settings, TASKS_TABLE, TASK_ENTRY)


async def table_from_changelog(settings: Settings) -> dict[str, AgentState]:
    return await changelog_of(settings, AGENTS_TABLE, AGENT_STATE)


async def test_rebuilding_from_the_event_log_gives_the_table(stack: Any) -> None:
    hub = await stack(agent_ttl=1.5)
    client = hub.client
    ids = [
        (await client.post("/agents", json=card(f"agent-{i}"))).json()["agent_id"] for i in range(6)
    ]
    # Agent 4 lives longer (its own TTL) and keeps heartbeating.
    await client.post("/agents", params={"ttl": 60}, json=card("agent-4"))
    await client.post("/agents", json=card("agent-0", description="renewed"))
    await client.put(f"/agents/{ids[1]}/status", json={"status": "busy"})
    await client.put(f"/agents/{ids[2]}/status", json={"status": "error"})
    await client.delete(f"/agents/{ids[3]}")
    await client.delete(f"/agents/{ids[3]}")  # rejected: changes nothing
    # Tasks in every state the timers and commands can put them in.
    work = [
        (await client.post("/tasks", json={"assignee_id": ids[4], "title": f"t{i}"})).json()["id"]
        for i in range(4)
    ]
    await client.post(f"/tasks/{work[0]}/status", json={"state": "working", "message": "on it"})
    await client.post(f"/tasks/{work[0]}/complete", json={"result": {"n": 1}})
    await client.post(f"/tasks/{work[1]}/cancel", json={"reason": "no longer needed"})
    await client.post(f"/tasks/{work[2]}/assign", json={"agent_id": ids[0]})
    await client.delete(f"/tasks/{work[3]}")
    await client.post("/tasks", json={"capability": "nobody", "ttl": 1})
    for _ in range(10):
        await client.post(f"/agents/{ids[4]}/heartbeat")
        await asyncio.sleep(0.25)
    # Agents 0, 1, 2 and 5 fall silent and expire, whatever status they reported.
    await wait_for(
        lambda: sum(1 for e in hub.hub.feed.recent(1000) if e.type == "agent.expired") >= 4,
        timeout=15,
        what="expiries",
    )

    async def same() -> bool:
        return await rebuilt_from_events(hub.settings) == await table_from_changelog(hub.settings)

    await wait_for(
        same, timeout=20, what="changelog to equal the fold of the event log", interval=0.5
    )
    table = await table_from_changelog(hub.settings)
    assert table[ids[3]].agent is None
    assert table[ids[4]].agent is not None and table[ids[4]].agent.status == "online"
    assert table[ids[0]].agent is not None and table[ids[0]].agent.card.description == "renewed"
    # The gateway's read model is the same fold.

    async def view_matches() -> bool:
        table = await table_from_changelog(hub.settings)
        return {k: s.agent for k, s in table.items()} == {
            k: hub.hub.directory.get(k) for k in table
        }

    await wait_for(
        view_matches, timeout=10, what="the gateway's read model to equal the table", interval=0.5
    )

    async def same_tasks() -> bool:
        table = await tasks_from_changelog(hub.settings)
        return table == await tasks_from_events(hub.settings) and all(
            hub.hub.board.entry(k) == v for k, v in table.items()
        )

    await wait_for(
        same_tasks,
        timeout=20,
        what="the task changelog and read model to equal the fold of the task events",
        interval=0.5,
    )
    table = await tasks_from_changelog(hub.settings)
    assert len(table) == 5
    assert {e.task.status.state for e in table.values() if e.task} == {
        "completed",
        "cancelled",
        "submitted",
        "expired",
    }


async def test_a_killed_worker_loses_nothing(stack: Any, start_worker: Any) -> None:
    hub = await stack(agent_ttl=4)
    client = hub.client
    first = (await client.post("/agents", json=card("survivor"))).json()
    mortal = (await client.post("/agents", json=card("mortal"))).json()
    in_flight = (
        await client.post("/tasks", json={"assignee_id": first["agent_id"], "title": "keep me"})
    ).json()
    working = await client.post(f"/tasks/{in_flight['id']}/status", json={"state": "working"})
    assert working.status_code == 200, working.text
    # Kill the worker without any chance to shut down.
    for process in _workers(start_worker):
        process.kill()

    # A registration published while no worker runs waits in the log.
    late_card = AgentCard(name="late", version="1")
    late = RegisterAgent(
        command_id=str(uuid.uuid4()),
        issued_at=datetime.now(UTC),
        agent_id=agent_id_for("late", "1"),
        card=late_card,
    )
    await hub.hub.publish(late)
    late_task = SubmitTask(
        command_id=str(uuid.uuid4()),
        issued_at=datetime.now(UTC),
        task_id="submitted-while-down",
        assignee_id=first["agent_id"],
    )
    await hub.hub.publish(late_task)

    start_worker(hub.settings)
    offsets: dict[str, Any] = {}

    async def progress() -> Any:
        try:
            offsets.update(await group_offsets(hub.settings, late_task.task_id))
        except (KafkaError, ValueError) as exc:  # while the group rebalances
            offsets["unavailable"] = repr(exc)
        return (
            _all_partitions_owned(hub.hub, hub.settings)
            and hub.hub.directory.get(late.agent_id)
            and hub.hub.board.get(late_task.task_id)
        )

    await wait_for(
        progress,
        timeout=90,
        interval=1,
        what="a new worker to take over and decide the waiting commands",
        detail=lambda: (
            f"partitions owned: {_all_partitions_owned(hub.hub, hub.settings)}, "
            f"late agent: {hub.hub.directory.get(late.agent_id) is not None}, "
            f"late task: {hub.hub.board.get(late_task.task_id) is not None}\n"
            f"workers: {hub.hub.live_workers()}\n"
            f"offsets: {offsets}\n" + "\n".join(p.log()[-3000:] for p in _workers(start_worker))
        ),
    )

    # State came back from the changelog: this is a renewal, not a first registration.
    renewed = await client.post("/agents", json=card("survivor"))
    assert renewed.status_code == 200 and renewed.json()["agent_id"] == first["agent_id"]
    assert renewed.json()["registered_at"] == first["registered_at"]
    history = [
        e for e in hub.hub.feed.recent(1000) if getattr(e, "agent_id", None) == first["agent_id"]
    ]
    # registered, then renewed; the silent TTL may have expired it in between.
    assert [e.type for e in history if e.type != "agent.expired"] == [
        "agent.registered",
        "agent.renewed",
    ], history
    assert [e.seq for e in history] == list(range(1, len(history) + 1)), history

    # The task in flight is where it was, and can be finished.
    done = await client.post(f"/tasks/{in_flight['id']}/complete", json={"result": "ok"})
    assert done.status_code == 200, done.text
    history = hub.hub.board.events(in_flight["id"])
    assert [e.type for e in history] == [
        "task.submitted",
        "task.status_changed",
        "task.status_changed",
    ], history

    # Liveness came back too: the silent agent still expires.
    await wait_for(
        lambda: _status(hub, mortal["agent_id"]) == "offline", timeout=4 + 8, what="mortal offline"
    )


async def group_offsets(settings: Settings, task_id: str) -> dict[str, Any]:
    """The worker group's committed offsets and the ends of the task commands topic."""
    from aiokafka.admin import AIOKafkaAdminClient

    from kolony.partitioning import partition_for

    admin = AIOKafkaAdminClient(**client_options(settings))
    consumer = AIOKafkaConsumer(**client_options(settings))
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.topics.app_id)
        topic = settings.topics.task_commands
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        return {
            "late task partition": partition_for(task_id.encode(), settings.partitions),
            "committed": {
                tp.partition: m.offset for tp, m in committed.items() if tp.topic == topic
            },
            "ends": {tp.partition: end for tp, end in ends.items()},
        }
    finally:
        await consumer.stop()
        await admin.close()


def _status(hub: Any, agent_id: str) -> str | None:
    agent = hub.hub.directory.get(agent_id)
    return agent.status if agent else None


def _workers(start_worker: Any) -> list[Any]:
    return list(start_worker.started)


FAILING = "explode"  # the task tests/support/failing_worker.py cannot decide


async def test_a_decider_that_fails_stops_its_worker_and_the_next_one_decides(
    stack: Any, start_worker: Any, tmp_path: Any
) -> None:
    """A decider that fails is not restarted in place (its overlay and table may hold states
    the log lacks): the worker exits non-zero, and the next one recovers from the log."""
    hub = await stack(workers=0)
    log = tmp_path / "failing-worker.log"
    failing = KolonyProcess(
        ["worker", "--log-level", "info"], hub.settings, log, module="tests.support.failing_worker"
    ).start()
    try:
        await wait_for(
            lambda: _all_partitions_owned(hub.hub, hub.settings),
            timeout=90,
            what="the failing worker to own every partition",
        )
        before = SubmitTask(
            command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), task_id="before"
        )
        await hub.hub.execute(before)
        await hub.hub.publish(
            SubmitTask(command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), task_id=FAILING)
        )
        process = failing.process
        assert process is not None
        await wait_for(
            lambda: process.poll() is not None,
            timeout=60,
            what="the worker to stop when its decider failed",
            detail=lambda: log.read_text()[-3000:],
        )
        assert process.returncode != 0
        assert "the stream worker crashed" in log.read_text()
    finally:
        if failing.process is not None and failing.process.poll() is None:
            failing.kill()
    # A worker that can decide it takes over and decides what the failed one left.
    start_worker(hub.settings)
    await wait_for(
        lambda: hub.hub.board.get(FAILING) is not None,
        timeout=90,
        what="the next worker to decide the command the failed one could not",
    )
    assert hub.hub.board.get("before") is not None
