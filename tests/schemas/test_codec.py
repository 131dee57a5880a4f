"""Every event, command and record survives a JSON round trip and matches its published schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from faust.serializers import codecs

import streams.codec  # noqa: F401 - registers the codecs
from schemas.a2a import AgentCard, AgentSkill, Message, Part, Task, TaskState, TaskStatus
from schemas.base import CommandRejected
from schemas.export import SCHEMAS, render
from schemas.registry import (
    AGENT_COMMAND,
    AGENT_EVENT,
    AGENT_STATE,
    AgentDeregistered,
    AgentExpired,
    AgentHeartbeatRecorded,
    AgentRegistered,
    AgentRenewed,
    AgentState,
    AgentStatus,
    AgentStatusChanged,
    DeregisterAgent,
    ExpireAgent,
    RecordHeartbeat,
    RegisterAgent,
    RegisteredAgent,
)
from streams.codec import AGENT_EVENT_CODEC, AGENT_STATE_CODEC

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CARD = AgentCard(name="a", version="1", skills=[AgentSkill(id="s", name="S", tags=["t"])])
ENVELOPE = {
    "event_id": "e",
    "command_id": "c",
    "correlation_id": "c",
    "causation_id": "c",
    "occurred_at": NOW,
    "seq": 1,
}

EVENTS = [
    AgentRegistered(**ENVELOPE, agent_id="a", card=CARD, ttl_seconds=60),
    AgentRenewed(**ENVELOPE, agent_id="a", card=CARD, ttl_seconds=30),
    AgentHeartbeatRecorded(**ENVELOPE, agent_id="a"),
    AgentStatusChanged(
        **ENVELOPE, agent_id="a", status=AgentStatus.BUSY, previous=AgentStatus.ONLINE
    ),
    AgentExpired(**ENVELOPE, agent_id="a", last_seen_at=NOW),
    AgentDeregistered(**ENVELOPE, agent_id="a", reason="bye"),
    CommandRejected(
        **ENVELOPE, entity_id="a", command_type="agent.heartbeat", code="not_found", reason="why"
    ),
]
COMMANDS = [
    RegisterAgent(command_id="c", issued_at=NOW, agent_id="a", card=CARD, ttl_seconds=5),
    RecordHeartbeat(command_id="c", issued_at=NOW, agent_id="a", status=AgentStatus.ERROR),
    DeregisterAgent(command_id="c", issued_at=NOW, agent_id="a", reason="done"),
    ExpireAgent(command_id="expire:a:3", issued_at=NOW, agent_id="a", last_seen_at=NOW),
]


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCS / f"{name}.schema.json").read_text())
    return loaded


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_event_round_trip_and_schema(event: Any) -> None:
    raw = AGENT_EVENT.dump_json(event, exclude_none=True)
    assert AGENT_EVENT.validate_json(raw) == event
    jsonschema.validate(json.loads(raw), schema("agent-event"))
    assert codecs.loads(AGENT_EVENT_CODEC, codecs.dumps(AGENT_EVENT_CODEC, event)) == event


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.type)
def test_command_round_trip_and_schema(command: Any) -> None:
    raw = command.model_dump_json(exclude_none=True)
    assert AGENT_COMMAND.validate_json(raw) == command
    jsonschema.validate(json.loads(raw), schema("agent-command"))


def test_state_round_trips_through_the_changelog_codec() -> None:
    agent = RegisteredAgent(
        agent_id="a", card=CARD, registered_at=NOW, last_seen_at=NOW, ttl_seconds=60
    )
    for state in (AgentState(), AgentState(agent=agent, seq=4, recent_command_ids=("x", "y"))):
        raw = codecs.dumps(AGENT_STATE_CODEC, state)
        assert codecs.loads(AGENT_STATE_CODEC, raw) == state
        assert AGENT_STATE.validate_json(raw) == state
        jsonschema.validate(json.loads(raw), schema("agent-state"))


def test_a2a_task_and_message_match_their_schemas() -> None:
    message = Message(message_id="m", role="user", parts=[Part(text="hi")])
    task = Task(
        id="t",
        context_id="c",
        status=TaskStatus(state=TaskState.SUBMITTED, timestamp=NOW),
        history=[message],
    )
    jsonschema.validate(json.loads(task.model_dump_json(exclude_none=True)), schema("task"))
    with pytest.raises(ValueError, match="exactly one"):
        Part(text="a", data={"data": {}})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_published_schemas_are_up_to_date(name: str) -> None:
    """docs/schemas is generated: run `kolony schemas export` after changing a model."""
    assert (DOCS / f"{name}.schema.json").read_text() == render(name)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        AGENT_COMMAND.validate_python(
            {
                "type": "agent.deregister",
                "command_id": "c",
                "issued_at": NOW,
                "agent_id": "a",
                "x": 1,
            }
        )
