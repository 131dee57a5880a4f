"""Every command type has one route: its log's topics and its entity's key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from schemas.a2a import AgentCard
from schemas.apps import AppCommand, DeregisterApp
from schemas.base import CommandEnvelope
from schemas.memory import MemoryCommand, SetMemory
from schemas.messages import AckMessages, DeleteMessage, MessageCommand, SendMessage
from schemas.registry import AgentCommand, RegisterAgent
from schemas.routes import command_key, route
from schemas.tasks import SubmitTask, TaskCommand
from schemas.topics import Topics

TOPICS = Topics("k")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def envelope() -> dict[str, Any]:
    return {"command_id": "c1", "issued_at": NOW}


def every_command_type() -> set[type]:
    unions = (AgentCommand, TaskCommand, MessageCommand, MemoryCommand, AppCommand)
    return {member for union in unions for member in get_args(get_args(union)[0])}


def test_every_command_type_has_a_route() -> None:
    """A command type added to a union without a route would fail here, not in production."""
    from schemas.routes import _BY_TYPE

    assert set(_BY_TYPE) == every_command_type()
    assert all(issubclass(t, CommandEnvelope) for t in _BY_TYPE)


@pytest.mark.parametrize(
    ("command", "commands", "events", "key"),
    [
        (
            RegisterAgent(**envelope(), agent_id="a1", card=AgentCard(name="n", version="1")),
            "k.agents.commands",
            "k.agents.events",
            "a1",
        ),
        (SubmitTask(**envelope(), task_id="t1"), "k.tasks.commands", "k.tasks.events", "t1"),
        (
            SetMemory(**envelope(), key="m.1", value=1),
            "k.memory.commands",
            "k.memory.events",
            "m.1",
        ),
        (
            DeregisterApp(**envelope(), app_id="app1"),
            "k.apps.commands",
            "k.apps.events",
            "app1",
        ),
    ],
)
def test_a_command_goes_to_its_log_keyed_by_its_entity(
    command: Any, commands: str, events: str, key: str
) -> None:
    to = route(TOPICS, command)
    assert (to.commands, to.events, to.key) == (commands, events, key)
    assert command_key(command) == key


def test_messaging_commands_are_keyed_by_the_agent_whose_state_they_change() -> None:
    sent = SendMessage.model_validate(
        {
            **envelope(),
            "sender_id": "alice",
            "to": ["bob"],
            "message": {"role": "agent", "parts": [{"text": "hi"}], "message_id": "m1"},
        }
    )
    read = AckMessages(**envelope(), agent_id="bob", message_ids=("m1",))
    deleted = DeleteMessage(**envelope(), sender_id="alice", message_id="m1")
    assert [route(TOPICS, c).key for c in (sent, read, deleted)] == ["alice", "bob", "alice"]
    assert {route(TOPICS, c).commands for c in (sent, read, deleted)} == {"k.messages.commands"}


def test_what_is_no_command_is_refused() -> None:
    with pytest.raises(TypeError, match="not a Kolony command"):
        route(TOPICS, object())
