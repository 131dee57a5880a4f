"""Generate the JSON Schemas of the protocol: ``kolony schemas export``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.a2a import AgentCard, Message, Task
from schemas.apps import APP_CALL_EVENT, APP_COMMAND, APP_EVENT, App, AppEntry
from schemas.errors import ErrorBody
from schemas.inbox import INBOX_ITEM
from schemas.memory import MEMORY_COMMAND, MEMORY_ENTRY, MEMORY_EVENT, MemoryItem
from schemas.messages import MESSAGE_COMMAND, MESSAGE_EVENT, MESSAGING_STATE, MessageRecord
from schemas.registry import AGENT_COMMAND, AGENT_EVENT, AgentState, RegisteredAgent
from schemas.system import WorkerBeacon
from schemas.tasks import TASK_COMMAND, TASK_ENTRY, TASK_EVENT, TaskRecord
from schemas.ws import CLIENT_FRAME, SERVER_FRAME

SCHEMAS: dict[str, TypeAdapter[Any]] = {
    "agent-command": AGENT_COMMAND,
    "agent-event": AGENT_EVENT,
    "agent-state": TypeAdapter(AgentState),
    "registered-agent": TypeAdapter(RegisteredAgent),
    "agent-card": TypeAdapter(AgentCard),
    "message": TypeAdapter(Message),
    "task": TypeAdapter(Task),
    "task-command": TASK_COMMAND,
    "task-event": TASK_EVENT,
    "task-entry": TASK_ENTRY,
    "task-record": TypeAdapter(TaskRecord),
    "message-command": MESSAGE_COMMAND,
    "message-event": MESSAGE_EVENT,
    "message-record": TypeAdapter(MessageRecord),
    "messaging-state": MESSAGING_STATE,
    "memory-command": MEMORY_COMMAND,
    "memory-event": MEMORY_EVENT,
    "memory-entry": MEMORY_ENTRY,
    "memory-item": TypeAdapter(MemoryItem),
    "app-command": APP_COMMAND,
    "app-event": APP_EVENT,
    "app-entry": TypeAdapter(AppEntry),
    "app": TypeAdapter(App),
    "app-call-event": APP_CALL_EVENT,
    "inbox-item": INBOX_ITEM,
    "ws-client-frame": CLIENT_FRAME,
    "ws-server-frame": SERVER_FRAME,
    "worker-beacon": TypeAdapter(WorkerBeacon),
    "error-body": TypeAdapter(ErrorBody),
}


INPUTS = {"ws-client-frame"}


def render(name: str) -> str:
    # What clients send is described as it is validated (aliases included), the rest as sent.
    if name in INPUTS:
        schema = SCHEMAS[name].json_schema(mode="validation")
    else:
        schema = SCHEMAS[name].json_schema(mode="serialization")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"kolony:{name}",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = directory / f"{name}.schema.json"
        path.write_text(render(name))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in export(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(written_path)  # noqa: T201
