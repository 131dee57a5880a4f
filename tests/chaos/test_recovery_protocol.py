"""The crash-safe deciding protocol, case by case (docs/design.md, "Deciding, crash-safe").

A worker killed after its events were acknowledged but before its changelog records and its
offsets were: the next worker re-reads the commands. It must neither decide them again
(their events are in the log) nor forget what those events did to the table.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from core import registry
from kolony.kafka import ensure_topics, producer_options
from kolony.settings import Settings
from schemas.a2a import AgentCard
from schemas.ids import agent_id_for
from schemas.registry import AGENT_EVENT, RecordHeartbeat, RegisterAgent
from streams.policies import registry_policy
from tests.conftest import wait_for
from tests.e2e.test_recovery import read_topic, table_from_changelog

pytestmark = pytest.mark.kafka


async def test_events_left_by_a_dead_worker_are_folded_in_and_not_decided_again(
    make_settings: Callable[..., Settings], start_worker: Any
) -> None:
    settings = make_settings()
    await ensure_topics(settings)
    topics = settings.topics
    agent_id = agent_id_for("orphan", "1")
    register = RegisterAgent(
        command_id=str(uuid.uuid4()),
        issued_at=datetime.now(UTC),
        agent_id=agent_id,
        card=AgentCard(name="orphan", version="1"),
    )
    # What a worker killed mid-batch leaves: the command (never committed) and its event,
    # but no changelog record.
    (registered,) = registry.decide(
        register, registry.initial_state(), datetime.now(UTC), registry_policy(settings)
    )
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        for topic, payload in (
            (topics.agent_commands, register.model_dump_json(exclude_none=True)),
            (topics.agent_events, AGENT_EVENT.dump_json(registered, exclude_none=True).decode()),
        ):
            await producer.send_and_wait(topic, payload.encode(), key=agent_id.encode())
        beat = RecordHeartbeat(
            command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), agent_id=agent_id
        )
        await producer.send_and_wait(
            topics.agent_commands, beat.model_dump_json().encode(), key=agent_id.encode()
        )
    finally:
        await producer.stop()

    start_worker(settings)

    async def stored() -> Any:
        return (await table_from_changelog(settings)).get(agent_id)

    state = await wait_for(stored, timeout=60, interval=0.5, what="the folded state")
    assert state.agent is not None and state.seq >= 1
    assert register.command_id in state.recent_command_ids
    # Decided once: the event the dead worker wrote is the only registration.
    events = [
        AGENT_EVENT.validate_json(record.value)
        for record in await read_topic(settings, topics.agent_events)
        if record.key == agent_id.encode()
    ]
    assert [e.command_id for e in events if e.type == "agent.registered"] == [register.command_id]
    assert not [e for e in events if e.type == "command.rejected"]
