"""Message, memory and WebSocket models survive a JSON round trip and match their schemas."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from faust.serializers import codecs

import streams.codec  # noqa: F401 - registers the codecs
from schemas.a2a import Message, Part, Role
from schemas.base import CommandRejected
from schemas.inbox import INBOX_ITEM, MemoryUpdatedDelivery, MessageDelivery
from schemas.memory import (
    MEMORY_COMMAND,
    MEMORY_ENTRY,
    MEMORY_EVENT,
    DeleteMemory,
    MemoryAcl,
    MemoryDeleted,
    MemoryEntry,
    MemoryItem,
    MemoryUpdated,
    SetMemory,
)
from schemas.messages import (
    MESSAGE_COMMAND,
    MESSAGE_EVENT,
    MESSAGING_STATE,
    AckMessages,
    BroadcastMessage,
    DeleteMessage,
    Delivery,
    MessageDeleted,
    MessageRecord,
    MessagesAcked,
    MessageSent,
    MessageType,
    MessagingState,
    SendMessage,
)
from schemas.ws import CLIENT_FRAME, SERVER_FRAME, AckFrame, ErrorFrame, Hello, MessageReceived
from streams.codec import MEMORY_ENTRY_CODEC, MESSAGING_STATE_CODEC
from tests.schemas.test_codec import ENVELOPE, NOW, schema

MESSAGE = Message(message_id="m1", role=Role.AGENT, parts=[Part(text="hi")])
RECORD = MessageRecord(
    message_id="m1",
    sender_id="a",
    delivery=Delivery.DIRECT,
    message_type=MessageType.INFO,
    message=MESSAGE,
    recipient_count=1,
    sent_at=NOW,
    seq=1,
)
ITEM = MemoryItem(
    key="k.x",
    value={"a": [1, None, "x"]},
    version=2,
    acl=MemoryAcl(owner="a", readers=("b",), writers=("*",)),
    created_by="a",
    created_at=NOW,
    updated_by="b",
    updated_at=NOW,
)
CMD = {"command_id": "c", "issued_at": NOW}

CASES: list[tuple[str, Any, Any]] = [
    (
        "message-event",
        MESSAGE_EVENT,
        MessageSent(**ENVELOPE, sender_id="a", record=RECORD, recipients=("b",)),
    ),
    ("message-event", MESSAGE_EVENT, MessagesAcked(**ENVELOPE, agent_id="b", message_ids=("m1",))),
    ("message-event", MESSAGE_EVENT, MessageDeleted(**ENVELOPE, sender_id="a", message_id="m1")),
    (
        "message-command",
        MESSAGE_COMMAND,
        SendMessage(**CMD, sender_id="a", to=("b",), task_id="t", message=MESSAGE),
    ),
    (
        "message-command",
        MESSAGE_COMMAND,
        BroadcastMessage(**CMD, sender_id="a", capability="gpu", message=MESSAGE),
    ),
    (
        "message-command",
        MESSAGE_COMMAND,
        AckMessages(**CMD, agent_id="b", message_ids=("m1", "m2")),
    ),
    ("message-command", MESSAGE_COMMAND, DeleteMessage(**CMD, sender_id="a", message_id="m1")),
    (
        "memory-event",
        MEMORY_EVENT,
        MemoryUpdated(**ENVELOPE, key="k.x", item=ITEM, previous_version=1, agent_id="b"),
    ),
    ("memory-event", MEMORY_EVENT, MemoryDeleted(**ENVELOPE, key="k.x", version=2)),
    (
        "memory-event",
        MEMORY_EVENT,
        CommandRejected(**ENVELOPE, code="conflict", reason="r", current_version=4),
    ),
    (
        "memory-command",
        MEMORY_COMMAND,
        SetMemory(**CMD, key="k.x", value=[1, 2], expected_version=0, readers=("*",)),
    ),
    (
        "memory-command",
        MEMORY_COMMAND,
        DeleteMemory(**CMD, key="k.x", agent_id="a", expected_version=3),
    ),
    (
        "inbox-item",
        INBOX_ITEM,
        MessageDelivery(
            delivery_id="e:b", agent_id="b", occurred_at=NOW, event_id="e", record=RECORD
        ),
    ),
    (
        "inbox-item",
        INBOX_ITEM,
        MemoryUpdatedDelivery(
            delivery_id="e:b",
            agent_id="b",
            occurred_at=NOW,
            event_id="e",
            key="k.x",
            version=2,
            item=ITEM,
        ),
    ),
    ("ws-server-frame", SERVER_FRAME, Hello()),
    ("ws-server-frame", SERVER_FRAME, AckFrame(id=1, request="memory:get", data={"x": 1})),
    (
        "ws-server-frame",
        SERVER_FRAME,
        ErrorFrame(id="a", code="conflict", detail="d", current_version=2),
    ),
    ("ws-server-frame", SERVER_FRAME, MessageReceived(delivery_id="e:b", message=RECORD)),
]


@pytest.mark.parametrize(("name", "adapter", "value"), CASES, ids=lambda x: getattr(x, "type", ""))
def test_round_trip_and_schema(name: str, adapter: Any, value: Any) -> None:
    raw = adapter.dump_json(value, exclude_none=True)
    assert adapter.validate_json(raw) == value
    jsonschema.validate(json.loads(raw), schema(name))


def test_states_round_trip_through_the_changelog_codecs() -> None:
    for codec, adapter, state, name in (
        (
            MESSAGING_STATE_CODEC,
            MESSAGING_STATE,
            MessagingState(seq=2, sent=1, recent_message_ids=("m",)),
            "messaging-state",
        ),
        (MEMORY_ENTRY_CODEC, MEMORY_ENTRY, MemoryEntry(item=ITEM, seq=2), "memory-entry"),
    ):
        raw = codecs.dumps(codec, state)
        assert codecs.loads(codec, raw) == state
        assert adapter.validate_json(raw) == state
        jsonschema.validate(json.loads(raw), schema(name))


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "agent:register", "id": 1, "card": {"name": "n", "version": "1"}},
        {"type": "message:send", "to": ["a", "b"], "content": "hi", "message_type": "error"},
        {
            "type": "message:send",
            "task_id": "t",
            "message": {"message_id": "m", "role": "agent", "parts": [{"text": "x"}]},
        },
        {"type": "task:create", "task": {"capability": "x", "priority": 4}},
        {"type": "task:update", "task_id": "t", "state": "working"},
        {"type": "memory:set", "key": "k", "value": {"draft": True}, "expected_version": 0},
        {"type": "memory:subscribe", "prefixes": ["a."], "keys": ["b"]},
    ],
)
def test_client_frames_parse_and_match_their_schema(frame: dict[str, Any]) -> None:
    CLIENT_FRAME.validate_python(frame)
    jsonschema.validate(frame, schema("ws-client-frame"))


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message:send", "content": "to nobody"},
        {"type": "message:send", "to": "a"},
        {"type": "message:send", "to": "a", "content": "x", "broadcast": True},
        {"type": "memory:subscribe"},
        {"type": "memory:set", "key": "bad key", "value": 1},
        {"type": "memory:set", "key": "k", "value": None},
        {"type": "task:create", "id": 1, "task": {"nope": 1}},
    ],
)
def test_bad_client_frames_are_refused(frame: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        CLIENT_FRAME.validate_python(frame)
