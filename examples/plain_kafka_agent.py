"""An agent that joins Kolony with nothing but a Kafka client and JSON (docs/protocol.md).

    KOLONY_BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/plain_kafka_agent.py --beats 5

It registers, waits for the hub's answer on the event log, heartbeats, and deregisters.
Nothing here imports Kolony: the same steps work from any language.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

# Kolony derives an agent's id from its card's name and version (docs/protocol.md).
KOLONY_NAMESPACE = uuid.UUID("6f1c2d2e-8b1a-5a8e-9a61-4b6f6c6f6e79")


def agent_id_for(name: str, version: str) -> str:
    return str(uuid.uuid5(KOLONY_NAMESPACE, f"agent\x00{name}\x00{version}"))


def command(kind: str, agent_id: str, **payload: object) -> dict[str, object]:
    return {
        "type": kind,
        "command_id": str(uuid.uuid4()),
        "issued_at": datetime.now(UTC).isoformat(),
        "issued_by": "plain-kafka-agent",
        "agent_id": agent_id,
        **payload,
    }


async def main(bootstrap: str, prefix: str, beats: int, interval: float) -> None:
    card = {
        "name": "plain-kafka-agent",
        "version": "1.0.0",
        "description": "Speaks Kolony's protocol with a bare Kafka client",
        "skills": [{"id": "echo", "name": "Echo", "tags": ["demo"]}],
    }
    agent_id = agent_id_for(card["name"], card["version"])
    commands, events = f"{prefix}.agents.commands", f"{prefix}.agents.events"
    # Kafka's default partitioner (murmur2 of the key) must place commands: Java and
    # aiokafka use it; librdkafka clients set partitioner=murmur2_random.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await producer.start()
    await consumer.start()
    try:
        # Read the event log from its current end, to see the hub's answer.
        partitions = [TopicPartition(events, p) for p in await producer.partitions_for(events)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)  # resolves "the end" before we publish
        register = command("agent.register", agent_id, card=card, ttl_seconds=interval * 3)
        await producer.send_and_wait(commands, json.dumps(register).encode(), key=agent_id.encode())
        async for record in consumer:
            event = json.loads(record.value)
            if event.get("command_id") == register["command_id"]:
                if event["type"] == "command.rejected":
                    raise SystemExit(f"rejected: {event['reason']}")
                print(f"{event['type']}: {agent_id}", flush=True)
                break
        for beat in range(beats):
            await asyncio.sleep(interval)
            heartbeat = command("agent.heartbeat", agent_id)
            await producer.send_and_wait(
                commands, json.dumps(heartbeat).encode(), key=agent_id.encode()
            )
            print(f"heartbeat {beat + 1}/{beats}", flush=True)
        goodbye = command("agent.deregister", agent_id, reason="example finished")
        await producer.send_and_wait(commands, json.dumps(goodbye).encode(), key=agent_id.encode())
        print("deregistered", flush=True)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KOLONY_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--prefix", default=os.environ.get("KOLONY_TOPIC_PREFIX", "kolony"))
    parser.add_argument("--beats", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.bootstrap, args.prefix, args.beats, args.interval))
