"""Faust's transactional processing (real Kafka only) runs the same registry end to end."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_registry import card

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("mode", [True, "auto"])
async def test_registry_under_exactly_once_processing(
    stack: Any, start_worker: Any, mode: bool | str
) -> None:
    hub = await stack(exactly_once=mode)
    first = await hub.client.post("/agents", json=card("transactional"))
    assert first.status_code == 201, first.text + start_worker.started[0].log()[-3000:]
    again = await hub.client.post("/agents", json=card("transactional"))
    assert again.json()["agent_id"] == first.json()["agent_id"]
    busy = await hub.client.put(
        f"/agents/{first.json()['agent_id']}/status", json={"status": "busy"}
    )
    assert busy.status_code == 200 and busy.json()["status"] == "busy"
    assert (await hub.client.delete(f"/agents/{first.json()['agent_id']}")).status_code == 200
