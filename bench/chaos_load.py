"""The chaos suite's load: agents on Kafka at a steady rate (registering, heartbeating, taking
their tasks, messaging and writing memory) and REST clients retrying with the same
``Idempotency-Key`` until answered (see bench/chaos.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from bench.chaos_agent import CARD
from bench.kolony_bench import _register_directly
from kolony.kafka import (
    consumer_options,
    producer_options,
)
from kolony.settings import Settings
from schemas.a2a import Message, Part, TaskState
from schemas.inbox import INBOX_ITEM
from schemas.memory import SetMemory
from schemas.messages import SendMessage
from schemas.registry import RecordHeartbeat
from schemas.tasks import TERMINAL_STATES, SubmitTask, UpdateTaskStatus

SDK_CAPABILITY = CARD.skills[0].id  # the tasks the SDK agent takes


def _text(text: str) -> Message:
    return Message(role="agent", parts=[Part(text=text)], message_id=str(uuid.uuid4()))


class Load:
    """Agents on Kafka at a steady rate; remembers each command the broker acknowledged and
    when each command's first decision event was seen."""

    def __init__(self, settings: Settings, agents: int, rate: float, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng
        self.agent_count = agents
        self.rate = rate
        self.agents: list[str] = []
        self.acknowledged: set[str] = set()
        self.acknowledged_at: dict[str, float] = {}
        self.sent_to: dict[str, tuple[str, int]] = {}  # command id -> topic, partition
        self.offsets: dict[str, int] = {}
        self.unacknowledged = 0
        self.tasks: set[str] = set()
        self.decided_at: dict[str, float] = {}
        self._producer = AIOKafkaProducer(**producer_options(settings), linger_ms=2)
        self._helpers: list[asyncio.Task[Any]] = []
        self._traffic: asyncio.Task[None] | None = None
        self._taken: set[str] = set()  # delivery ids acted upon (deliveries may repeat)
        self._reports: set[asyncio.Task[None]] = set()  # agents' reports being sent
        self.completed: set[str] = set()  # tasks whose completed report was acknowledged
        self.sdk_agent: str | None = None  # every eighth task goes to it, when there is one
        self.sdk_tasks: set[str] = set()
        self.registered: set[str] = set()  # agents whose registration was decided
        self.finished: dict[str, float] = {}  # task id -> when its terminal event was seen

    async def start(self) -> None:
        await self._producer.start()
        self.agents = [
            await _register_directly(self._producer, self.settings, f"chaos-{i}", "chaos")
            for i in range(self.agent_count)
        ]
        self._helpers = [
            asyncio.create_task(self._follow_decisions()),
            asyncio.create_task(self._work_inbox()),
            asyncio.create_task(self._heartbeat()),
        ]
        self._traffic = asyncio.create_task(self._steady())

    async def stop_traffic(self) -> None:
        await cancel(self._traffic)

    async def quiesce(self) -> None:
        """No new commands: the traffic and the agents' work stop, reports in flight are sent."""
        await self.stop_traffic()
        self._helpers[1].cancel()  # the inbox: no task is taken any more
        await asyncio.gather(*self._reports, return_exceptions=True)

    async def stop(self) -> None:
        await self.quiesce()
        for helper in self._helpers:
            helper.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        await self._producer.stop()

    def check(self) -> None:
        """Raise what stopped a part of the load (it must not die quietly)."""
        for task in [*self._helpers, self._traffic]:
            if task is not None and task.done() and not task.cancelled():
                task.result()

    def decided(self) -> bool:
        return all(c in self.decided_at for c in self.acknowledged)

    def undecided(self) -> int:
        return sum(1 for c in self.acknowledged if c not in self.decided_at)

    def undecided_where(self) -> dict[str, int]:
        """Where the undecided commands wait: topic and partition, with how many."""
        where = Counter(
            f"{self.sent_to[c][0]}[{self.sent_to[c][1]}]"
            for c in self.acknowledged
            if c not in self.decided_at
        )
        return dict(where.most_common())

    def envelope(self) -> dict[str, Any]:
        return {"command_id": str(uuid.uuid4()), "issued_at": datetime.now(UTC)}

    async def send(self, topic: str, key: str, command: BaseModel, audited: bool = True) -> None:
        value = command.model_dump_json(exclude_none=True).encode()
        try:
            written = await self._producer.send_and_wait(topic, value, key=key.encode())
        except KafkaError:
            self.unacknowledged += 1  # the client was told it failed: not a promise
            return
        if audited:
            command_id: str = command.command_id  # type: ignore[attr-defined]
            self.sent_to[command_id] = (topic, written.partition)
            self.offsets[command_id] = written.offset
            self.acknowledged.add(command_id)
            self.acknowledged_at[command_id] = time.monotonic()

    async def _steady(self) -> None:
        topics = self.settings.topics
        async for i in _ticks(self.rate):
            sender, other = self.rng.sample(self.agents, 2)
            kind = i % 4
            if kind in (0, 1):
                task_id = f"chaos-{uuid.uuid4().hex[:12]}"
                self.tasks.add(task_id)
                sdk = self.sdk_agent is not None and i % 8 == 0
                if sdk:
                    self.sdk_tasks.add(task_id)
                command: BaseModel = SubmitTask(
                    **self.envelope(),
                    task_id=task_id,
                    assignee_id=self.sdk_agent if sdk else other,
                    requester_id=sender,
                    title=f"task {i}",
                    capability=SDK_CAPABILITY if sdk else None,
                )
                asyncio.create_task(self.send(topics.task_commands, task_id, command))
            elif kind == 2:
                command = SendMessage(
                    **self.envelope(), sender_id=sender, to=(other,), message=_text(f"m{i}")
                )
                asyncio.create_task(self.send(topics.message_commands, sender, command))
            else:
                key = f"chaos.{sender}.{i % 16}"
                command = SetMemory(**self.envelope(), key=key, value={"i": i}, agent_id=sender)
                asyncio.create_task(self.send(topics.memory_commands, key, command))

    async def _heartbeat(self) -> None:
        while True:
            for agent_id in self.agents:
                beat = RecordHeartbeat(**self.envelope(), agent_id=agent_id)
                await self.send(self.settings.topics.agent_commands, agent_id, beat, False)
            await asyncio.sleep(2.0)

    async def _follow_decisions(self) -> None:
        consumer = AIOKafkaConsumer(**consumer_options(self.settings), enable_auto_commit=False)
        await consumer.start()
        try:
            t = self.settings.topics
            events = (t.agent_events, t.task_events, t.message_events, t.memory_events)
            tps = [TopicPartition(e, p) for e in events for p in range(self.settings.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    now = time.monotonic()
                    for record in records:
                        event = json.loads(record.value)
                        command_id = event.get("command_id")
                        if command_id:
                            self.decided_at.setdefault(command_id, now)
                        if event.get("type") == "task.status_changed" and event.get("state") in {
                            s.value for s in TERMINAL_STATES
                        }:
                            self.finished.setdefault(event["task_id"], now)
                        if event.get("type") == "agent.registered":
                            self.registered.add(event["agent_id"])
        finally:
            await consumer.stop()

    async def _work_inbox(self) -> None:
        """Each agent takes the tasks delivered to it: working, then completed."""
        consumer = AIOKafkaConsumer(**consumer_options(self.settings), enable_auto_commit=False)
        await consumer.start()
        mine = set(self.agents)
        try:
            topic = self.settings.topics.agent_inbox
            tps = [TopicPartition(topic, p) for p in range(self.settings.inbox_partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        item = INBOX_ITEM.validate_json(record.value)
                        if item.type != "inbox.task_assigned" or item.delivery_id in self._taken:
                            continue
                        if item.agent_id not in mine:
                            continue
                        self._taken.add(item.delivery_id)
                        report = asyncio.create_task(self._do(item.agent_id, item.task.id))
                        self._reports.add(report)
                        report.add_done_callback(self._reports.discard)
        finally:
            await consumer.stop()

    async def _do(self, agent_id: str, task_id: str) -> None:
        topic = self.settings.topics.task_commands
        for state in (TaskState.WORKING, TaskState.COMPLETED):
            update = UpdateTaskStatus(
                **self.envelope(), task_id=task_id, state=state, agent_id=agent_id
            )
            await self.send(topic, task_id, update)
        self.completed.add(task_id)


class RestLoad:
    """Clients of the gateway: tasks (to the Kafka agents) and memory writes over REST, each
    request with an ``Idempotency-Key`` (the command's id) and retried with the same key,
    through the gateway's deaths, until it is answered. A 2xx answer is the acknowledgement
    the audit holds the hub to."""

    def __init__(self, load: Load, url: str, rate: float) -> None:
        self.load = load
        self.url = url
        self.rate = rate
        self.answered_at: list[float] = []  # when each 2xx answer came
        self.refused = 0  # 4xx: the hub said no (not a promise)
        self.abandoned = 0  # never answered within the client's patience
        self.abandoned_why: list[str] = []  # the last answer each abandoned request got
        self.abandoned_keys: set[str] = set()
        self.retries = 0
        self._calls: set[asyncio.Task[None]] = set()
        self._traffic: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(base_url=url, timeout=15)

    async def start(self) -> None:
        self._traffic = asyncio.create_task(self._steady())

    async def stop_traffic(self) -> None:
        await cancel(self._traffic)

    async def settle(self, within: float) -> None:
        """Let the requests in flight finish (retrying), then close the client."""
        await self.stop_traffic()
        if self._calls:
            await asyncio.wait(self._calls, timeout=within)
        for call in self._calls:
            call.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        await self._client.aclose()

    async def _steady(self) -> None:
        load = self.load
        async for i in _ticks(self.rate):
            sender, other = load.rng.sample(load.agents, 2)
            if i % 2:
                body: dict[str, Any] = {
                    "title": f"rest task {i}",
                    "assignee_id": other,
                    "requester_id": sender,
                }
                call = self._call("POST", "/tasks", body, task=True)
            else:
                key = f"chaos.rest.{sender}.{i % 16}"
                call = self._call("PUT", f"/memory/{key}", {"value": {"i": i}, "agent_id": sender})
            task = asyncio.create_task(call)
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, method: str, path: str, body: Any, task: bool = False) -> None:
        key = str(uuid.uuid4())
        began = datetime.now(UTC)
        deadline = time.monotonic() + 180
        last = ""
        while time.monotonic() < deadline:
            try:
                answer = await self._client.request(
                    method, path, json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError:
                answer = None  # the gateway is down, or died while answering
            last = f"{answer.status_code} {answer.text[:300]}" if answer else "no answer"
            if answer is not None and answer.status_code < 500:
                if answer.status_code >= 400:
                    self.refused += 1
                    return
                now = time.monotonic()
                self.answered_at.append(now)
                self.load.acknowledged.add(key)
                self.load.acknowledged_at[key] = now
                self.load.sent_to[key] = ("rest " + path.split("/")[1], -1)
                self.load.offsets[key] = -1
                if task:
                    self.load.tasks.add(answer.json()["id"])
                return
            self.retries += 1
            await asyncio.sleep(0.5)
        self.abandoned += 1
        self.abandoned_keys.add(key)
        self.abandoned_why.append(
            f"{method} {path} (key {key}, tried {began:%H:%M:%S} to {datetime.now(UTC):%H:%M:%S}):"
            f" {last}"
        )


async def cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _ticks(rate: float) -> AsyncIterator[int]:
    """1, 2, 3, … at ``rate`` a second, on a fixed schedule (a late tick does not delay
    the ones after it)."""
    began = time.monotonic()
    i = 0
    while True:
        i += 1
        await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
        yield i
