"""An agent that joins Kolony with nothing but a Kafka client and JSON (docs/protocol.md).

    .venv/bin/python examples/plain_kafka_agent.py --tasks 3

It finds Kafka as any client on this machine can: KOLONY_BOOTSTRAP_SERVERS if set, else the
addresses `kolony up` wrote to .kolony/hub.json, else 127.0.0.1:9092.

It registers with the capability ``reverse``, waits for the hub's answer on the event log,
heartbeats, takes the tasks delivered to its inbox (reporting ``working``, then
``completed`` with the input text reversed), and deregisters after ``--tasks`` tasks (or
``--seconds``). Try it with:

    curl -X POST localhost:8000/tasks -H 'content-type: application/json' \\
         -d '{"capability": "reverse", "input": {"text": "stressed"}}'

Nothing here imports Kolony: the same steps work from any language.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

# Kolony derives an agent's id from its card's name and version (docs/protocol.md).
KOLONY_NAMESPACE = uuid.UUID("6f1c2d2e-8b1a-5a8e-9a61-4b6f6c6f6e79")


def agent_id_for(name: str, version: str) -> str:
    return str(uuid.uuid5(KOLONY_NAMESPACE, f"agent\x00{name}\x00{version}"))


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner: the partition that holds ``key``."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def command(kind: str, **payload: object) -> dict[str, object]:
    return {
        "type": kind,
        "command_id": str(uuid.uuid4()),
        "issued_at": datetime.now(UTC).isoformat(),
        "issued_by": "plain-kafka-agent",
        **payload,
    }


class PlainAgent:
    def __init__(self, bootstrap: str, prefix: str, interval: float) -> None:
        self.card = {
            "name": "plain-kafka-agent",
            "version": "1.0.0",
            "description": "Speaks Kolony's protocol with a bare Kafka client",
            "skills": [{"id": "reverse", "name": "Reverse text", "tags": ["demo", "text"]}],
        }
        self.agent_id = agent_id_for(self.card["name"], self.card["version"])
        self.prefix = prefix
        self.interval = interval
        # Kafka's default partitioner (murmur2 of the key) must place commands: Java and
        # aiokafka use it; librdkafka clients set partitioner=murmur2_random.
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.events = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        self.inbox = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.seen: set[str] = set()

    async def send(self, topic: str, key: str, body: dict[str, object]) -> None:
        await self.producer.send_and_wait(
            f"{self.prefix}.{topic}", json.dumps(body).encode(), key=key.encode()
        )

    async def run(self, tasks: int, seconds: float) -> None:
        for client in (self.producer, self.events, self.inbox):
            await client.start()
        try:
            await self.open_inbox()
            await self.register()
            beating = asyncio.create_task(self.heartbeat())
            try:
                await asyncio.wait_for(self.work(tasks), seconds)
            except TimeoutError:
                print("time is up", flush=True)
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            bye = command("agent.deregister", agent_id=self.agent_id, reason="example finished")
            await self.send("agents.commands", self.agent_id, bye)
            print("deregistered", flush=True)
        finally:
            for client in (self.inbox, self.events, self.producer):
                await client.stop()

    async def open_inbox(self) -> None:
        """Our one partition of the inbox, from its end: nothing is for us before we register."""
        topic = f"{self.prefix}.agents.inbox"
        partitions = await self.producer.partitions_for(topic)
        tp = TopicPartition(topic, partition_for(self.agent_id, len(partitions)))
        self.inbox.assign([tp])
        await self.inbox.seek_to_end(tp)
        await self.inbox.position(tp)  # resolves "the end" before we register

    async def register(self) -> None:
        """Register, and read the hub's answer from the agent's partition of the event log."""
        topic = f"{self.prefix}.agents.events"
        partitions = await self.producer.partitions_for(topic)
        tp = TopicPartition(topic, partition_for(self.agent_id, len(partitions)))
        self.events.assign([tp])
        await self.events.seek_to_end(tp)
        await self.events.position(tp)
        register = command(
            "agent.register", agent_id=self.agent_id, card=self.card, ttl_seconds=self.interval * 3
        )
        await self.send("agents.commands", self.agent_id, register)
        async for record in self.events:
            event = json.loads(record.value)
            if event.get("command_id") == register["command_id"]:
                if event["type"] == "command.rejected":
                    raise SystemExit(f"rejected: {event['reason']}")
                print(f"{event['type']}: {self.agent_id}", flush=True)
                return

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.send(
                "agents.commands", self.agent_id, command("agent.heartbeat", agent_id=self.agent_id)
            )

    async def work(self, tasks: int) -> None:
        done = 0
        async for record in self.inbox:
            if record.key != self.agent_id.encode():
                continue  # another agent's delivery that shares our partition
            item = json.loads(record.value)
            if item["delivery_id"] in self.seen:
                continue  # delivered twice (the hub redelivers after a crash)
            self.seen.add(item["delivery_id"])
            if item["type"] != "inbox.task_assigned":
                print(f"{item['type']}: {item['task']['status']['state']}", flush=True)
                continue
            await self.perform(item["task"])
            done += 1
            if done >= tasks:
                return

    async def perform(self, task: dict[str, Any]) -> None:
        task_id = task["id"]
        await self.report(task_id, "working", message="reversing")
        text = str((task.get("input") or {}).get("text", ""))
        await self.report(task_id, "completed", result={"text": text[::-1]})
        print(f"completed {task_id}", flush=True)

    async def report(self, task_id: str, state: str, **payload: object) -> None:
        if isinstance(payload.get("message"), str):
            text = payload.pop("message")
            payload["message"] = {
                "message_id": str(uuid.uuid4()),
                "role": "agent",
                "parts": [{"text": text}],
            }
        update = command(
            "task.update_status", task_id=task_id, state=state, agent_id=self.agent_id, **payload
        )
        await self.send("tasks.commands", task_id, update)


def where_is_kafka() -> str:
    """KOLONY_BOOTSTRAP_SERVERS, else what the local `kolony up` wrote down, else the default."""
    if os.environ.get("KOLONY_BOOTSTRAP_SERVERS"):
        return os.environ["KOLONY_BOOTSTRAP_SERVERS"]
    hub = Path(os.environ.get("KOLONY_DATA_DIR", ".kolony")) / "hub.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        return str(json.loads(hub.read_text())["bootstrap_servers"])
    return "127.0.0.1:9092"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default=where_is_kafka())
    parser.add_argument("--prefix", default=os.environ.get("KOLONY_TOPIC_PREFIX", "kolony"))
    parser.add_argument("--tasks", type=int, default=3, help="leave after this many tasks")
    parser.add_argument("--seconds", type=float, default=300, help="or after this long")
    parser.add_argument("--interval", type=float, default=1.0, help="heartbeat interval")
    args = parser.parse_args()

    async def main() -> None:
        agent = PlainAgent(args.bootstrap, args.prefix, args.interval)  # clients need a loop
        await agent.run(args.tasks, args.seconds)

    asyncio.run(main())
