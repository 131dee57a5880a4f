"""Task commands, events, entries and inbox items survive a JSON round trip and match their
published schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from faust.serializers import codecs

import streams.codec  # noqa: F401 - registers the codecs
from schemas.a2a import Artifact, DataPart, Message, Part, Role, TaskState, TaskStatus
from schemas.base import CommandRejected
from schemas.inbox import INBOX_ITEM, TaskAssignedDelivery, TaskUpdatedDelivery
from schemas.tasks import (
    TASK_COMMAND,
    TASK_ENTRY,
    TASK_EVENT,
    AssignmentReason,
    AssignTask,
    CancelTask,
    DeleteTask,
    ExpireTask,
    MarkTaskOverdue,
    Priority,
    ReleaseTask,
    RouteTask,
    SubmitTask,
    TaskAssigned,
    TaskAssignment,
    TaskDeleted,
    TaskEntry,
    TaskMarkedOverdue,
    TaskRecord,
    TaskReleased,
    TaskStatusChanged,
    TaskSubmitted,
    UpdateTaskStatus,
)
from streams.codec import TASK_ENTRY_CODEC
from tests.schemas.test_codec import ENVELOPE, NOW, schema

MESSAGE = Message(message_id="m", role=Role.USER, parts=[Part(text="hi")])
ARTIFACT = Artifact(artifact_id="a1", parts=[Part(data=DataPart(data={"k": [1, 2]}))])
ASSIGNMENT = TaskAssignment(
    agent_id="a", attempt=1, reason=AssignmentReason.CAPABILITY, assigned_at=NOW
)
TASK = TaskRecord(
    id="t",
    context_id="ctx",
    status=TaskStatus(state=TaskState.SUBMITTED, timestamp=NOW),
    history=[MESSAGE],
    title="Summarize",
    priority=Priority.HIGH,
    requester_id="r",
    assignee_id="a",
    capability="summarize",
    input={"url": "u"},
    max_retries=2,
    created_at=NOW,
    updated_at=NOW,
    due_at=datetime(2026, 11, 22, tzinfo=UTC),
    expires_at=datetime(2026, 11, 22, tzinfo=UTC),
)
CMD = {"command_id": "c", "issued_at": NOW}

EVENTS = [
    TaskSubmitted(**ENVELOPE, task=TASK, assignment=ASSIGNMENT),
    TaskSubmitted(**ENVELOPE, task=TASK.model_copy(update={"assignee_id": None})),
    TaskAssigned(**ENVELOPE, task_id="t", assignment=ASSIGNMENT),
    TaskReleased(**ENVELOPE, task_id="t", agent_id="a", reason="went offline", retries=1),
    TaskStatusChanged(
        **ENVELOPE,
        task_id="t",
        state=TaskState.COMPLETED,
        previous=TaskState.WORKING,
        message=MESSAGE,
        artifacts=[ARTIFACT],
        result={"summary": "s"},
        agent_id="a",
    ),
    TaskMarkedOverdue(**ENVELOPE, task_id="t", due_at=NOW),
    TaskDeleted(**ENVELOPE, task_id="t", previous=TaskState.WORKING),
    CommandRejected(
        **ENVELOPE, entity_id="t", command_type="task.cancel", code="conflict", reason="done"
    ),
]
COMMANDS = [
    SubmitTask(**CMD, task_id="t", capability="x", initial_message=MESSAGE, input=[1, "two"]),
    AssignTask(**CMD, task_id="t", agent_id="a"),
    RouteTask(**CMD, task_id="t"),
    UpdateTaskStatus(**CMD, task_id="t", state=TaskState.WORKING, artifacts=[ARTIFACT]),
    CancelTask(**CMD, task_id="t", reason="why", agent_id="r"),
    DeleteTask(**CMD, task_id="t"),
    ReleaseTask(**CMD, task_id="t", agent_id="a", reason="went offline"),
    ExpireTask(**CMD, task_id="t"),
    MarkTaskOverdue(**CMD, task_id="t"),
]
ITEMS = [
    TaskAssignedDelivery(
        delivery_id="e:a", agent_id="a", occurred_at=NOW, event_id="e", task=TASK,
        assignment=ASSIGNMENT,
    ),
    TaskUpdatedDelivery(
        delivery_id="e:r", agent_id="r", occurred_at=NOW, event_id="e", task=TASK, role="requester"
    ),
]  # fmt: skip


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_event_round_trip_and_schema(event: Any) -> None:
    raw = TASK_EVENT.dump_json(event, exclude_none=True)
    assert TASK_EVENT.validate_json(raw) == event
    jsonschema.validate(json.loads(raw), schema("task-event"))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.type)
def test_command_round_trip_and_schema(command: Any) -> None:
    raw = command.model_dump_json(exclude_none=True)
    assert TASK_COMMAND.validate_json(raw) == command
    jsonschema.validate(json.loads(raw), schema("task-command"))


@pytest.mark.parametrize("item", ITEMS, ids=lambda i: i.type)
def test_inbox_item_round_trip_and_schema(item: Any) -> None:
    raw = INBOX_ITEM.dump_json(item, exclude_none=True)
    assert INBOX_ITEM.validate_json(raw) == item
    jsonschema.validate(json.loads(raw), schema("inbox-item"))


def test_entry_round_trips_through_the_changelog_codec() -> None:
    for entry in (
        TaskEntry(),
        TaskEntry(task=TASK, assignments=(ASSIGNMENT,), seq=3, recent_command_ids=("c",)),
    ):
        raw = codecs.dumps(TASK_ENTRY_CODEC, entry)
        assert codecs.loads(TASK_ENTRY_CODEC, raw) == entry
        assert TASK_ENTRY.validate_json(raw) == entry
        jsonschema.validate(json.loads(raw), schema("task-entry"))


def test_a_plain_json_client_may_spell_states_as_the_seeds_do() -> None:
    raw = json.dumps(
        {"type": "task.update_status", **CMD, "issued_at": NOW.isoformat(), "task_id": "t",
         "state": "IN_PROGRESS"}
    )  # fmt: skip
    command = TASK_COMMAND.validate_json(raw)
    assert isinstance(command, UpdateTaskStatus)
    assert command.state is TaskState.WORKING
