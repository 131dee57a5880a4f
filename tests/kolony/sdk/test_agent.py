"""``kolony.sdk.Agent`` end to end over Kafka, both styles."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kolony.sdk import (
    Agent,
    AgentCard,
    AgentSkill,
    IncomingMessage,
    MemoryChange,
    Rejected,
    TaskContext,
    TaskState,
    on_memory,
    on_message,
    on_task,
)
from tests.conftest import wait_for

pytestmark = pytest.mark.kafka


def card(name: str, *skills: str) -> AgentCard:
    return AgentCard(
        name=name,
        version="1.0.0",
        skills=[AgentSkill(id=s, name=s.title(), tags=[]) for s in skills],
    )


async def test_decorator_style_delegation_progress_and_a_failing_handler(stack: Any) -> None:
    hub = await stack()
    worker = Agent(card("summarizer", "summarize"), settings=hub.settings)
    calls: list[str] = []

    @worker.on_task("summarize")
    async def summarize(task: TaskContext) -> dict[str, str]:
        calls.append(task.id)
        await task.progress("reading")
        text = task.input["text"]
        if text == "boom":
            raise ValueError("cannot summarize a bang")
        return {"summary": text[:5]}

    requester = Agent(card("researcher"), settings=hub.settings)
    async with worker, requester:
        listed = await hub.client.get("/agents", params={"capability": "summarize"})
        assert [a["agent_id"] for a in listed.json()["agents"]] == [worker.agent_id]

        handle = await requester.delegate({"text": "a long text"}, capability="summarize")
        done = await handle.result(within=30)
        assert done.status.state == TaskState.COMPLETED
        assert done.result == {"summary": "a lon"}
        assert done.assignee_id == worker.agent_id
        assert done.requester_id == requester.agent_id
        history = (await hub.client.get(f"/tasks/{handle.task_id}")).json()["history"]
        assert any(p.get("text") == "reading" for m in history for p in m["parts"])

        failing = await requester.delegate({"text": "boom"}, to=worker.agent_id)
        failed = await failing.result(within=30)
        assert failed.status.state == TaskState.FAILED
        assert "cannot summarize a bang" in (failed.reason or "")

        # The agent survived its handler's exception: it takes the next task.
        again = await (await requester.delegate({"text": "after"}, capability="summarize")).result(
            within=30
        )
        assert again.result == {"summary": "after"}
        assert len(calls) == 3

        # A report the hub refuses is a decision, not a failure to confirm: it raises at
        # once, never sent again (a redelivered finished task must not hold a slot forever).
        with pytest.raises(Rejected, match="never changes"):
            await asyncio.wait_for(worker.report(handle.task_id, TaskState.WORKING), 15)

        # A task pinned to an agent the hub does not know fails, with the reason, soon.
        lost = await (await requester.delegate({"text": "x"}, to="no-such-agent")).result(30)
        assert lost.status.state == TaskState.FAILED, lost
        assert lost.reason

    async def gone() -> bool:  # leaving the context deregistered it
        return (await hub.client.get(f"/agents/{worker.agent_id}")).status_code == 404

    await wait_for(gone, timeout=10, what="the agent to be deregistered")


class Greeter(Agent):
    card = card("greeter", "greet")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heard: list[IncomingMessage] = []
        self.changes: list[MemoryChange] = []

    @on_task("greet")
    async def greet(self, task: TaskContext) -> str:
        return f"hello, {task.input['name']}"

    @on_message
    async def listen(self, message: IncomingMessage) -> None:
        self.heard.append(message)

    @on_memory("notes.*")
    async def noted(self, change: MemoryChange) -> None:
        self.changes.append(change)


async def test_class_style_messages_memory_and_tasks(stack: Any) -> None:
    hub = await stack()
    greeter = Greeter(settings=hub.settings)
    other = Agent(card("neighbour"), settings=hub.settings)
    async with greeter, other:
        sent = [await other.send(greeter.agent_id, f"hi {i}") for i in range(5)]
        assert [r.seq for r in sent] == sorted(r.seq for r in sent)
        await wait_for(lambda: len(greeter.heard) == 5, timeout=30, what="five messages")
        assert [m.text for m in greeter.heard] == [f"hi {i}" for i in range(5)], "in order"
        assert {m.sender_id for m in greeter.heard} == {other.agent_id}

        # Handled messages are acked: the gateway shows none unread.
        async def all_read() -> bool:
            unread = await hub.client.get(
                f"/agents/{greeter.agent_id}/messages", params={"unread": "true"}
            )
            return unread.json() == []

        await wait_for(all_read, timeout=30, what="the messages to be acked")

        # Memory subscriptions come from on_memory: a write under notes. is heard, others not.
        await other.memory_set("notes.today", {"mood": "sunny"})
        await other.memory_set("elsewhere", 1)
        await wait_for(lambda: greeter.changes, timeout=30, what="a memory notification")
        assert [(c.key, c.item.value if c.item else None) for c in greeter.changes] == [
            ("notes.today", {"mood": "sunny"})
        ]

        greeted = await (await other.delegate({"name": "Ada"}, capability="greet")).result(30)
        assert greeted.result == "hello, Ada"


async def test_receive_memory_cas_and_refusals(stack: Any) -> None:
    hub = await stack()
    alice = Agent(card("alice"), settings=hub.settings)
    bob = Agent(card("bob"), settings=hub.settings)
    async with alice, bob:
        await alice.send(bob.agent_id, "first")
        await alice.broadcast("to everyone")
        got = await bob.receive(within=30)
        if len(got) < 2:
            got += await bob.receive(within=30)
        assert sorted(m.text for m in got) == ["first", "to everyone"]
        assert await bob.receive() == [], "received messages are not handed out again"

        with pytest.raises(Rejected) as unknown:
            await alice.send("nobody-at-all", "hello?")
        assert unknown.value.code == "not_found"

        created = await alice.memory_set("plan", {"step": 1}, expected_version=0, writers=["*"])
        assert created.version == 1
        updated = await bob.memory_set("plan", {"step": 2}, expected_version=1)
        assert updated.version == 2
        with pytest.raises(Rejected) as lost:
            await alice.memory_set("plan", {"step": 3}, expected_version=1)
        assert lost.value.code == "conflict" and lost.value.current_version == 2
        item = await bob.memory_get("plan")
        assert item is not None and item.value == {"step": 2} and item.version == 2

        private = await alice.memory_set("secret", "x", readers=[alice.agent_id])
        assert private.acl.owner == alice.agent_id
        with pytest.raises(Rejected) as refused:
            await bob.memory_set("secret", "mine now")
        assert refused.value.code == "forbidden"

        await alice.memory_delete("plan")
        assert await bob.memory_get("plan") is None
        assert await bob.memory_get("never-written") is None


async def test_a_task_in_flight_when_the_agent_stops_is_finished_by_its_next_run(
    stack: Any,
) -> None:
    hub = await stack()
    release = asyncio.Event()
    runs: list[str] = []

    def make_worker(block: bool) -> Agent:
        worker = Agent(card("slow-worker", "slow"), settings=hub.settings)

        @worker.on_task("slow")
        async def slow(task: TaskContext) -> str:
            runs.append(task.id)
            if block:
                await release.wait()
            return "done"

        return worker

    requester = Agent(card("impatient"), settings=hub.settings)
    async with requester:
        first = make_worker(block=True)
        await first.start()
        handle = await requester.delegate("work", capability="slow")
        await wait_for(lambda: runs, timeout=30, what="the task to start")
        # As if the process died: the handler never finished, nothing was committed for it,
        # and the agent stays registered (a deregistration would hand its tasks back).
        await first.stop(deregister=False)

        second = make_worker(block=False)
        async with second:
            done = await handle.result(within=60)
        assert done.status.state == TaskState.COMPLETED and done.result == "done"
        assert runs == [handle.task_id, handle.task_id], "redelivered once, finished once"

        # A task that was finished is not redone by the next run of the agent.
        third = make_worker(block=False)
        async with third:
            again = await (await requester.delegate("more", capability="slow")).result(30)
            assert again.result == "done"
        fourth = make_worker(block=False)
        async with fourth:
            await asyncio.sleep(2)
        assert runs.count(again.id) == 1
