"""``Agent(url=...)``: agents that reach the hub through a gateway's WebSocket, working with
agents on Kafka; and riding out the gateway going away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn

from kolony.broker import free_port
from kolony.sdk import (
    Agent,
    IncomingMessage,
    MemoryChange,
    Rejected,
    TaskContext,
    TaskState,
)
from services.gateway.app import create_app
from tests.conftest import Served, wait_for
from tests.kolony.sdk.test_agent import card

pytestmark = pytest.mark.kafka


async def test_gateway_and_kafka_agents_work_together(served: Served) -> None:
    heard: list[IncomingMessage] = []
    changes: list[MemoryChange] = []
    remote = Agent(card("remote", "translate"), url=served.url)

    @remote.on_task("translate")
    async def translate(task: TaskContext) -> str:
        await task.progress("looking words up")
        if task.input == "??":
            raise LookupError("no such word")
        return {"hello": "hallo"}[task.input]

    @remote.on_message
    async def listen(message: IncomingMessage) -> None:
        heard.append(message)

    @remote.on_memory("glossary.*")
    async def noted(change: MemoryChange) -> None:
        changes.append(change)

    local = Agent(card("local"), settings=served.stack.settings)
    async with remote, local:
        done = await (await local.delegate("hello", capability="translate")).result(30)
        assert done.status.state == TaskState.COMPLETED and done.result == "hallo"
        failed = await (await local.delegate("??", to=remote.agent_id)).result(30)
        assert failed.status.state == TaskState.FAILED and "no such word" in (failed.reason or "")

        # The gateway agent delegates too, and talks.
        asked = Agent(card("helper", "help"), settings=served.stack.settings)

        @asked.on_task("help")
        async def help_out(task: TaskContext) -> str:
            return f"helped with {task.input}"

        async with asked:
            got = await (await remote.delegate("homework", capability="help")).result(30)
            assert got.result == "helped with homework"

        for i in range(3):
            await local.send(remote.agent_id, f"note {i}")
        await wait_for(lambda: len(heard) == 3, timeout=30, what="three messages")
        assert [m.text for m in heard] == ["note 0", "note 1", "note 2"]
        sent = await remote.send(local.agent_id, "thanks")
        assert sent.sender_id == remote.agent_id
        assert [m.text for m in await local.receive(within=30)] == ["thanks"]

        first = await remote.memory_set("glossary.hello", "hallo", expected_version=0)
        assert first.version == 1
        with pytest.raises(Rejected) as lost:
            await remote.memory_set("glossary.hello", "moin", expected_version=0)
        assert lost.value.code == "conflict" and lost.value.current_version == 1
        assert (await remote.memory_get("glossary.hello")).value == "hallo"  # type: ignore[union-attr]
        assert await remote.memory_get("glossary.absent") is None
        await local.memory_set("glossary.bye", "tschüss")
        await wait_for(lambda: changes, timeout=30, what="a memory notification over the socket")
        assert [(c.key, c.item.value if c.item else None) for c in changes] == [
            ("glossary.bye", "tschüss")
        ]
        with pytest.raises(Rejected) as unknown:
            await remote.send("nobody", "hello?")
        assert unknown.value.code == "not_found"


@contextlib.asynccontextmanager
async def gateway_on(served: Served, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(served.stack.settings, served.stack.hub),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=10, what="the gateway to listen")
    try:
        yield
    finally:
        server.should_exit = True
        await serving


async def test_a_gateway_agent_rides_out_the_gateway_going_away(served: Served) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proceed = asyncio.Event()
    runs: list[str] = []
    remote = Agent(card("patient", "long-job"), url=url, ttl_seconds=60)

    @remote.on_task("long-job")
    async def long_job(task: TaskContext) -> str:
        runs.append(task.id)
        if task.input == "first":
            await proceed.wait()
        return f"{task.input} done"

    local = Agent(card("boss"), settings=served.stack.settings)
    async with local:
        gateway: Callable[[], Any] = lambda: gateway_on(served, port)  # noqa: E731
        async with gateway():
            await remote.start()
            first = await local.delegate("first", capability="long-job")
            await wait_for(lambda: runs, timeout=30, what="the first task to start")
        # The gateway is gone. The handler finishes; a second task is assigned meanwhile.
        proceed.set()
        second = await local.delegate("second", to=remote.agent_id)
        await asyncio.sleep(1)
        async with gateway():  # back, on the same address
            finished = await first.result(within=60)
            assert finished.status.state == TaskState.COMPLETED and finished.result == "first done"
            picked_up = await second.result(within=60)
            assert picked_up.result == "second done", "a task assigned while away is not missed"
            assert sorted(runs) == sorted([first.task_id, second.task_id]), "each ran once"
            await remote.stop()

    async def gone() -> bool:
        return (await served.stack.client.get(f"/agents/{remote.agent_id}")).status_code == 404

    await wait_for(gone, timeout=10, what="the gateway agent to deregister")
