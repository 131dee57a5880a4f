"""Messages under load, as agents speaking Kafka directly see them: direct message latency
at a fixed rate, and how long a broadcast takes to reach every agent."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.kolony_bench import InboxReader, _register_directly
from bench.stats import Latency
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


async def direct_message_latency(settings: Settings, rate: float, seconds: float) -> Latency:
    """A sender publishes ``message.send`` commands at ``rate`` per second (open loop); the
    time runs until the message is in the recipient's inbox partition."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
    await producer.start()
    sender = await _register_directly(producer, settings, "bench-sender", "talk")
    receiver = await _register_directly(producer, settings, "bench-receiver", "listen")
    inbox = InboxReader(settings, receiver)
    await inbox.start()
    sent_at: dict[str, float] = {}
    got_at: dict[str, float] = {}

    async def read() -> None:
        async for item in inbox.items():
            if item.type == "inbox.message":
                got_at.setdefault(item.record.message_id, time.perf_counter())

    async def send(i: int) -> str:
        command = SendMessage(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            sender_id=sender,
            to=(receiver,),
            message=_message(f"message {i}"),
        )
        sent_at[command.message.message_id] = time.perf_counter()
        await producer.send_and_wait(
            settings.topics.message_commands,
            command.model_dump_json(exclude_none=True).encode(),
            key=sender.encode(),
        )
        return command.message.message_id

    reader = asyncio.create_task(read())
    try:
        # Warm up until messages get through (the worker's view has seen the receiver).
        first = await send(-1)
        while first not in got_at:
            with contextlib.suppress(TimeoutError):
                await _until(lambda m=first: m in got_at, 2, "warm-up")
            if first not in got_at:
                first = await send(-1)
        warm = [await send(-1) for _ in range(100)]
        await _until(lambda: all(m in got_at for m in warm), 60, "warm-up messages")
        sent_at.clear()
        got_at.clear()
        begin = time.perf_counter()
        sends = []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            sends.append(asyncio.create_task(send(i)))
        await asyncio.gather(*sends)
        with contextlib.suppress(TimeoutError):  # a backlog shows in the count, not a crash
            await _until(lambda: len(got_at) >= len(sent_at), 120, "messages")
        return Latency.of([(got_at[m] - sent_at[m]) * 1000 for m in sent_at if m in got_at])
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await inbox.consumer.stop()
        await producer.stop()


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
