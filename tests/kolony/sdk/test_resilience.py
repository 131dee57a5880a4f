"""An SDK agent rides out a broker restart: it reconnects, finishes its task, and nothing
is lost or done twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from kolony.sdk import Agent, AgentCard, AgentSkill, TaskContext, TaskState
from tests.conftest import wait_for
from tests.support.kafka_cluster import KafkaCluster

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[KafkaCluster]:
    """A broker of this module's own, to stop and start without disturbing other tests."""
    cluster = KafkaCluster(1, heap_mb=384)
    cluster.start()
    yield cluster
    cluster.stop()


async def test_an_agent_survives_a_broker_restart_and_finishes_its_task(
    stack: Any, start_worker: Any, own_kafka: KafkaCluster
) -> None:
    hub = await stack(bootstrap_servers=own_kafka.bootstrap_servers, partitions=2)
    settings = hub.settings
    proceed = asyncio.Event()
    runs: list[str] = []
    worker = Agent(
        AgentCard(
            name="steady",
            version="1.0.0",
            skills=[AgentSkill(id="steady-work", name="Steady work", tags=[])],
        ),
        settings=settings,
        ttl_seconds=60,
    )

    @worker.on_task("steady-work")
    async def work(task: TaskContext) -> dict[str, Any]:
        runs.append(task.id)
        await proceed.wait()  # the broker goes away while this runs
        return {"done": task.input}

    requester = Agent(AgentCard(name="waiting", version="1.0.0"), settings=settings)
    async with worker, requester:
        handle = await requester.delegate("payload", capability="steady-work")
        await wait_for(lambda: runs, timeout=30, what="the handler to start")

        own_kafka.stop_node(0, kill=True)
        proceed.set()  # the result is ready while the broker is down
        await asyncio.sleep(3)
        own_kafka.start_node(0)
        await asyncio.to_thread(own_kafka.wait_ready, 90)

        done = await handle.result(within=120)
        assert done.status.state == TaskState.COMPLETED, done
        assert done.result == {"done": "payload"}
        assert runs == [handle.task_id], "the handler ran once"

        # Heartbeats resumed: the hub sees the agent online, seen after the restart.
        restarted = done.updated_at

        async def seen_again() -> bool:
            agent = hub.hub.directory.get(worker.agent_id)
            return agent is not None and agent.last_seen_at > restarted

        await wait_for(seen_again, timeout=90, what="a heartbeat after the restart")

        # And the agent still works: a new task, start to finish.
        proceed.clear()
        proceed.set()
        again = await (await requester.delegate("more", capability="steady-work")).result(60)
        assert again.result == {"done": "more"}

    async def events_of(task_id: str) -> list[str]:
        return [e.type for e in hub.hub.board.events(task_id)]

    # The task's log: one completion, no duplicate transitions.
    history = await events_of(handle.task_id)
    assert history.count("task.status_changed") == 2, history  # working, completed


async def test_an_unconfirmed_report_is_sent_again_until_decided_never_dropped(
    stack: Any, start_worker: Any
) -> None:
    """The worker dies while an agent finishes its task: the completed report goes
    unanswered, the SDK sends it again under the same command id, and once a worker is back
    the task completes, once, without being run again."""
    hub = await stack(partitions=2)
    settings = hub.settings
    proceed = asyncio.Event()
    runs: list[str] = []
    worker = Agent(
        AgentCard(
            name="patient",
            version="1.0.0",
            skills=[AgentSkill(id="patient-work", name="Patient work", tags=[])],
        ),
        settings=settings,
        ttl_seconds=120,
        request_timeout=2.0,
    )

    @worker.on_task("patient-work")
    async def work(task: TaskContext) -> dict[str, Any]:
        runs.append(task.id)
        await proceed.wait()
        return {"done": task.input}

    requester = Agent(AgentCard(name="asker", version="1.0.0"), settings=settings)
    async with worker, requester:
        handle = await requester.delegate("payload", capability="patient-work")
        await wait_for(lambda: runs, timeout=30, what="the handler to start")
        for process in start_worker.started:
            process.kill()
        proceed.set()  # the result is ready while no worker decides anything
        await asyncio.sleep(5)  # a few unanswered attempts
        start_worker(settings)
        done = await handle.result(within=120)
        assert done.status.state == TaskState.COMPLETED, done
        assert runs == [handle.task_id], "the handler ran once"

    history = [e.type for e in hub.hub.board.events(handle.task_id)]
    assert history.count("task.status_changed") == 2, history  # working, completed
