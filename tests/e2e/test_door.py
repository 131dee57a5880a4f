"""One validation, at the door: what the worker could not decode never reaches the log.

Null where a value is required, JSON nested past the limit and documents past the size
limit get a 4xx naming the field or the limit, at once, on REST and on the WebSocket
(an error frame; the connection stays up); never a 5xx, a timeout or a dropped socket.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from kolony.kafka import producer_options
from schemas.limits import MAX_COMMAND_BYTES, MAX_JSON_DEPTH
from schemas.memory import MEMORY_EVENT
from tests.conftest import wait_for
from tests.e2e.test_recovery import read_topic

pytestmark = pytest.mark.kafka


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"deeper": value}
    return value


async def test_refusals_at_the_door_name_the_field_or_the_limit(stack: Any) -> None:
    hub = await stack()
    client = hub.client

    null = await client.put("/memory/notes", json={"value": None})
    assert null.status_code == 422, null.text
    assert "value" in null.text and "null" in null.text

    for depth in (MAX_JSON_DEPTH + 1, 255, 300):
        deep = await client.post("/tasks", json={"title": "deep", "input": nested(depth)})
        assert deep.status_code == 422, (depth, deep.text)
        assert "deeper than the limit" in deep.text
    # Deeper than any parser recurses: still a clear refusal.
    body = '{"title": "x", "input": ' + "[" * 100_000 + "]" * 100_000 + "}"
    hostile = await client.post(
        "/tasks", content=body, headers={"content-type": "application/json"}
    )
    assert hostile.status_code == 422, hostile.text

    big = await client.post("/tasks", json={"title": "big", "input": "x" * 2_000_000})
    assert big.status_code == 413, big.text
    assert str(MAX_COMMAND_BYTES) in big.json()["detail"]
    # Under the request limit, over the command's once encoded: 422, not a broker error.
    near = await client.post("/tasks", json={"title": "near", "input": "é" * 100_000})
    assert near.status_code in (201, 422), near.text

    metadata = {"role": "user", "parts": [{"text": "hi"}], "message_id": "m1"}
    metadata["metadata"] = {"deep": nested(MAX_JSON_DEPTH + 1)}
    deep_meta = await client.post("/tasks", json={"title": "meta", "message": metadata})
    assert deep_meta.status_code == 422, deep_meta.text

    fine = await client.post("/tasks", json={"title": "fine", "input": nested(MAX_JSON_DEPTH - 2)})
    assert fine.status_code == 201, fine.text
    kept = await client.put("/memory/notes", json={"value": {"ok": [1, 2, 3]}})
    assert kept.status_code == 201, kept.text  # created


async def test_a_command_the_worker_cannot_decode_is_answered_with_its_id(stack: Any) -> None:
    """A client on plain Kafka that sends a null value hears why, by its command id."""
    hub = await stack()
    settings = hub.settings
    command_id = str(uuid.uuid4())
    raw = {
        "type": "memory.set",
        "command_id": command_id,
        "issued_at": datetime.now(UTC).isoformat(),
        "key": "plain",
        "value": None,
    }
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.memory_commands, json.dumps(raw).encode(), key=b"plain"
        )
    finally:
        await producer.stop()

    async def rejection() -> Any:
        for record in await read_topic(settings, settings.topics.memory_events):
            event = MEMORY_EVENT.validate_json(record.value)
            if event.command_id == command_id:
                return event
        return None

    event = await wait_for(rejection, timeout=30, interval=0.5, what="the rejection")
    assert event.type == "command.rejected" and event.code == "invalid"
    assert "value" in event.reason
