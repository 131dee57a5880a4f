"""``SyncAgent``: the SDK from blocking code, with plain-function handlers."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from kolony.sdk import AgentCard, AgentSkill, BusError, IncomingMessage, SyncAgent, TaskContext

pytestmark = pytest.mark.kafka


async def test_blocking_agents_delegate_talk_and_share_memory(stack: Any) -> None:
    hub = await stack()
    settings = hub.settings
    heard: list[str] = []
    handler_threads: set[int] = set()

    def scenario() -> dict[str, Any]:
        doubler = SyncAgent(
            AgentCard(
                name="doubler",
                version="1",
                skills=[AgentSkill(id="double", name="Double", tags=[])],
            ),
            settings=settings,
        )

        @doubler.on_task("double")
        def double(task: TaskContext) -> int:  # a plain function: it may block
            handler_threads.add(threading.get_ident())
            assert not threading.current_thread().name.startswith("kolony-agent")
            time.sleep(0.1)
            if task.input < 0:
                raise ValueError("only positive numbers")
            return int(task.input) * 2

        @doubler.on_message
        def listen(message: IncomingMessage) -> None:
            heard.append(message.text)

        with doubler, SyncAgent(AgentCard(name="clerk", version="1"), settings=settings) as clerk:
            doubled = clerk.delegate(21, capability="double").result(within=30)
            refused = clerk.delegate(-1, to=doubler.agent_id).result(within=30)
            clerk.send(doubler.agent_id, "thanks")
            deadline = time.monotonic() + 30
            while not heard and time.monotonic() < deadline:
                time.sleep(0.05)
            written = clerk.memory_set("ledger.total", 42, expected_version=0)
            read = doubler.memory_get("ledger.total")
            return {
                "doubled": doubled,
                "refused": refused,
                "written": written,
                "read": read,
                "caller": threading.get_ident(),
            }

    outcome = await asyncio.to_thread(scenario)
    assert outcome["doubled"].result == 42
    assert outcome["refused"].status.state == "failed"
    assert "only positive numbers" in outcome["refused"].reason
    assert heard == ["thanks"]
    assert outcome["written"].version == 1 and outcome["read"].value == 42
    assert handler_threads and outcome["caller"] not in handler_threads


def test_a_sync_agent_used_before_start_says_so() -> None:
    idle = SyncAgent(AgentCard(name="idle", version="1"))
    with pytest.raises(BusError, match="not started"):
        idle.send("someone", "hello")
