"""Retries that never apply twice: a client's own command id (REST ``Idempotency-Key``,
a WebSocket frame's ``command_id``) gets the first outcome back on every retry."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.memory import MEMORY_EVENT
from schemas.tasks import TASK_EVENT
from tests.conftest import wait_for
from tests.e2e.test_recovery import read_topic

pytestmark = pytest.mark.kafka


async def _decisions(settings: Any, topic: str, adapter: Any, command_id: str) -> list[Any]:
    records = await read_topic(settings, topic)
    events = [adapter.validate_json(r.value) for r in records]
    return [e for e in events if e.command_id == command_id]


async def test_a_repeated_request_returns_the_first_outcome(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    headers = {"Idempotency-Key": "create-report-1"}
    first = await client.post("/tasks", json={"title": "once"}, headers=headers)
    again = await client.post("/tasks", json={"title": "once"}, headers=headers)
    assert first.status_code == 201 and again.status_code == 201, (first.text, again.text)
    assert first.json()["id"] == again.json()["id"]  # the same task, not a second one
    submitted = await _decisions(
        hub.settings, hub.settings.topics.task_events, TASK_EVENT, "create-report-1"
    )
    assert [e.type for e in submitted] == ["task.submitted"]

    bad = await client.post("/tasks", json={"title": "x"}, headers={"Idempotency-Key": "no spaces"})
    assert bad.status_code == 422, bad.text


async def test_a_retry_after_a_503_gets_the_outcome_without_a_second_write(
    stack: Any, start_worker: Any
) -> None:
    hub = await stack(command_timeout=1.5)
    client = hub.client
    for process in start_worker.started:
        process.kill()
    headers = {"Idempotency-Key": "write-notes-1"}
    body = {"value": {"draft": 1}}
    unconfirmed = await client.put("/memory/notes", json=body, headers=headers)
    assert unconfirmed.status_code == 503, unconfirmed.text
    assert "Idempotency-Key" in unconfirmed.json()["detail"]

    start_worker(hub.settings)

    async def retried() -> Any:
        answer = await client.put("/memory/notes", json=body, headers=headers)
        return answer if answer.status_code != 503 else None

    answer = await wait_for(retried, timeout=60, interval=0.5, what="the retry to be answered")
    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["version"] == 1  # written once
    updates = await _decisions(
        hub.settings, hub.settings.topics.memory_events, MEMORY_EVENT, "write-notes-1"
    )
    assert len(updates) == 1
