"""Messages under load, as agents speaking Kafka directly see them: direct message latency
at a fixed rate, and how long a broadcast takes to reach every agent."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.kolony_bench import _register_directly
from bench.stats import Latency
from kolony.kafka import require_bootstrap
from kolony.settings import Settings
from schemas.a2a import Message, Part, Role
from schemas.inbox import INBOX_ITEM
from schemas.messages import BroadcastMessage, SendMessage


def _message(text: str) -> Message:
    return Message(message_id=str(uuid.uuid4()), role=Role.AGENT, parts=[Part(text=text)])


async def _until(done: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)  # noqa: ASYNC110 - waiting on other tasks' results


class Arrivals:
    """Reads every partition of a topic from its end, noting when each id first arrives."""

    def __init__(self, settings: Settings, topic: str, partitions: int, id_of: IdOf) -> None:
        self.topic = topic
        self.partitions = partitions
        self.id_of = id_of
        self.at: dict[str, float] = {}
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            isolation_level="read_committed",  # as agents read: what a worker committed
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Arrivals:
        await self.consumer.start()
        partitions = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            fetched = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            now = time.perf_counter()
            for records in fetched.values():
                for record in records:
                    found = self.id_of(record.value)
                    if found is not None:
                        self.at.setdefault(found, now)


IdOf = Callable[[bytes], "str | None"]
Send = Callable[[int], Awaitable[str]]


async def _first_through(send: Send, arrivals: Arrivals, attempts: int = 100) -> None:
    """Send until one gets through (a second per try): the path is ready."""
    for _ in range(attempts):
        first = await send(0)
        with contextlib.suppress(TimeoutError):
            await _until(lambda m=first: m in arrivals.at, 1, "the first delivery")
        if first in arrivals.at:
            return
    raise TimeoutError(f"nothing got through in {attempts} tries")


async def paced(
    send: Send, arrivals: Arrivals, rate: float, seconds: float, warm_up: int
) -> Latency:
    """Open loop: call ``send(i)`` ``rate`` times a second for ``seconds`` (after ``warm_up``
    sends that must all arrive); each latency runs from the call until the id arrives."""
    warm = [await send(-1 - i) for i in range(warm_up)]
    await _until(lambda: all(m in arrivals.at for m in warm), 60, "warm-up")
    sent_at: dict[str, float] = {}

    async def timed(i: int) -> None:
        started = time.perf_counter()
        sent_at[await send(i)] = started

    begin = time.perf_counter()
    sends = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
        sends.append(asyncio.create_task(timed(i)))
    await asyncio.gather(*sends)
    with contextlib.suppress(TimeoutError):  # a backlog shows in the count, not a crash
        await _until(lambda: all(m in arrivals.at for m in sent_at), 120, "deliveries")
    return Latency.of([(arrivals.at[m] - t) * 1000 for m, t in sent_at.items() if m in arrivals.at])


def _inbox_message_id(value: bytes) -> str | None:
    item = INBOX_ITEM.validate_json(value)
    return item.record.message_id if item.type == "inbox.message" else None


async def direct_message_latency(
    settings: Settings, rate: float, seconds: float, pairs: int
) -> Latency:
    """``pairs`` senders each talk to their own recipient, ``rate`` messages a second in all
    (open loop, round robin over the pairs), publishing ``message.send`` commands as agents
    speaking Kafka do; the time runs until the message is in the recipient's inbox topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
    await producer.start()
    senders = [
        await _register_directly(producer, settings, f"bench-sender-{i}", "talk")
        for i in range(pairs)
    ]
    receivers = [
        await _register_directly(producer, settings, f"bench-receiver-{i}", "listen")
        for i in range(pairs)
    ]
    topic = settings.topics.agent_inbox

    async def send(i: int) -> str:
        pair = i % pairs
        command = SendMessage(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            sender_id=senders[pair],
            to=(receivers[pair],),
            message=_message(f"message {i}"),
        )
        await producer.send_and_wait(
            settings.topics.message_commands,
            command.model_dump_json(exclude_none=True).encode(),
            key=senders[pair].encode(),
        )
        return command.message.message_id

    try:
        async with Arrivals(settings, topic, settings.inbox_partitions, _inbox_message_id) as got:
            # Until a message gets through, the worker's view has not seen the agents yet.
            await _first_through(send, got)
            return await paced(send, got, rate, seconds, warm_up=pairs)
    finally:
        await producer.stop()


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.relay", *args], stdout=log, stderr=subprocess.STDOUT
        )


async def relay_latency(
    settings: Settings, rate: float, seconds: float, keys: int, workdir: Path, hops: int = 2
) -> Latency:
    """The floor for a path of ``hops`` trips through the broker: the same open loop as the
    Kolony measure it stands beside, through ``hops - 1`` bare relays (:mod:`bench.relay`,
    each its own process, with the worker's fetch wait) over topics with the same partition
    counts (the commands' first, the inbox's last), ``keys`` distinct record keys."""
    n = settings.partitions
    topics = [f"{settings.topic_prefix}.relay{hops}.{i}" for i in range(hops)]
    counts = [n] * (hops - 1) + [settings.inbox_partitions]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, c, 1) for t, c in zip(topics, counts, strict=True)])
    finally:
        await admin.close()
    bootstrap = require_bootstrap(settings)
    relays = [
        _spawn(
            [
                bootstrap,
                topics[i],
                topics[i + 1],
                str(counts[i + 1]),
                str(settings.fetch_max_wait_ms),
            ],
            workdir / f"relay{hops}.{i}.log",
        )
        for i in range(hops - 1)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
    await producer.start()
    record_keys = [f"bench-key-{i}".encode() for i in range(keys)]

    async def send(i: int) -> str:
        record_id = uuid.uuid4().hex
        payload = _message(f"message {i}").model_dump_json().encode()
        value = record_id.encode() + b" " + payload
        await producer.send_and_wait(topics[0], value, key=record_keys[i % keys])
        return record_id

    try:
        async with Arrivals(
            settings, topics[-1], counts[-1], lambda v: v.split(b" ", 1)[0].decode()
        ) as got:
            await _first_through(send, got)  # every relay has joined its group and reads
            return await paced(send, got, rate, seconds, warm_up=min(keys, 100))
    finally:
        await producer.stop()
        for process in relays:
            process.terminate()
        for process in relays:
            process.wait(30)


async def broadcast_fan_out(settings: Settings, agents: int, broadcasts: int) -> Latency:
    """``agents`` agents with one capability; each broadcast to that capability is timed
    from publishing the command until the last agent's delivery is in the inbox topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    await producer.start()
    sender = await _register_directly(producer, settings, "bench-announcer", "announce")
    await asyncio.gather(
        *(
            _register_directly(producer, settings, f"bench-listener-{i}", "bench-fanout")
            for i in range(agents)
        )
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        isolation_level="read_committed",
    )
    await consumer.start()
    topic = settings.topics.agent_inbox
    partitions = [TopicPartition(topic, p) for p in range(settings.inbox_partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)
    counts: dict[str, int] = {}
    done_at: dict[str, float] = {}

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                for record in records:
                    item = INBOX_ITEM.validate_json(record.value)
                    if item.type != "inbox.message":
                        continue
                    message_id = item.record.message_id
                    counts[message_id] = counts.get(message_id, 0) + 1
                    if counts[message_id] == agents:
                        done_at[message_id] = time.perf_counter()

    async def broadcast() -> tuple[str, float]:
        command = BroadcastMessage(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            sender_id=sender,
            capability="bench-fanout",
            message=_message("to everyone"),
        )
        started = time.perf_counter()
        await producer.send_and_wait(
            settings.topics.message_commands,
            command.model_dump_json(exclude_none=True).encode(),
            key=sender.encode(),
        )
        return command.message.message_id, started

    reader = asyncio.create_task(read())
    try:
        # Warm up until a broadcast reaches all of them (the view has seen every agent).
        for _ in range(60):
            message_id, _ = await broadcast()
            with contextlib.suppress(TimeoutError):
                await _until(lambda m=message_id: m in done_at, 2, "warm-up")
            if message_id in done_at:
                break
        samples = []
        for _ in range(broadcasts):
            message_id, started = await broadcast()
            await _until(lambda m=message_id: m in done_at, 30, "a broadcast")
            samples.append((done_at[message_id] - started) * 1000)
        return Latency.of(samples)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
