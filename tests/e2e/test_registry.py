"""The agent registry end to end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services.hub import Hub
from services.usecases import registry
from tests.conftest import wait_for

pytestmark = pytest.mark.kafka


def card(name: str = "summarizer", version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "description": "Summarizes long documents",
        "skills": [{"id": "summarize", "name": "Summarize", "tags": ["text", "summaries"]}],
        **extra,
    }


async def test_register_renew_list_filter_deregister(stack: Any) -> None:
    hub = await stack()
    client = hub.client

    first = await client.post("/agents", json=card())
    assert first.status_code == 201, first.text
    agent = first.json()
    assert agent["status"] == "online"
    assert agent["card"]["name"] == "summarizer"

    again = await client.post("/agents", json=card(description="now shorter"))
    assert again.status_code == 200
    assert again.json()["agent_id"] == agent["agent_id"]
    assert again.json()["card"]["description"] == "now shorter"
    assert again.json()["registered_at"] == agent["registered_at"]

    other = (
        await client.post(
            "/agents",
            json=card("coder", skills=[{"id": "code", "name": "Code", "tags": ["python"]}]),
        )
    ).json()
    assert other["agent_id"] != agent["agent_id"]
    newer = (await client.post("/agents", json=card(version="2.0.0"))).json()
    assert newer["agent_id"] != agent["agent_id"], "another version is another agent"

    listed = (await client.get("/agents")).json()
    assert listed["total"] == 3
    by_capability = (await client.get("/agents", params={"capability": "summaries"})).json()
    assert {a["agent_id"] for a in by_capability["agents"]} == {
        agent["agent_id"],
        newer["agent_id"],
    }
    by_text = (await client.get("/agents", params={"q": "PYTHON"})).json()
    assert [a["agent_id"] for a in by_text["agents"]] == [other["agent_id"]]
    assert (await client.get("/agents", params={"status": "offline"})).json()["total"] == 0

    fetched = await client.get(f"/agents/{agent['agent_id']}")
    assert fetched.status_code == 200 and fetched.json()["agent_id"] == agent["agent_id"]

    gone = await client.delete(f"/agents/{agent['agent_id']}")
    assert gone.status_code == 200
    assert gone.json() == {"status": "deleted", "agent_id": agent["agent_id"]}
    assert (await client.get(f"/agents/{agent['agent_id']}")).status_code == 404
    again_gone = await client.delete(f"/agents/{agent['agent_id']}")
    assert again_gone.status_code == 404
    assert "not registered" in again_gone.json()["detail"]

    events = (await client.get("/events", params={"limit": 100})).json()
    types = [e["type"] for e in events]
    assert types.count("agent.registered") == 3
    assert (
        "agent.renewed" in types and "agent.deregistered" in types and "command.rejected" in types
    )


async def test_heartbeats_keep_an_agent_online_and_silence_takes_it_offline(stack: Any) -> None:
    ttl = 2.0
    hub = await stack(agent_ttl=ttl)
    client = hub.client
    quiet = (await client.post("/agents", json=card("quiet"))).json()
    chatty = (await client.post("/agents", json=card("chatty"))).json()

    started = time.monotonic()
    while time.monotonic() - started < ttl * 2:
        response = await client.post(f"/agents/{chatty['agent_id']}/heartbeat")
        assert response.status_code == 200
        await asyncio.sleep(0.25)

    async def offline(agent_id: str) -> bool:
        return (await client.get(f"/agents/{agent_id}")).json()["status"] == "offline"

    # The quiet one went offline within TTL + 2 s of its registration.
    await wait_for(
        lambda: offline(quiet["agent_id"]),
        timeout=ttl + 2 - (time.monotonic() - started) + ttl * 2,
        what="quiet agent offline",
    )
    assert not await offline(chatty["agent_id"])
    silent_since = time.monotonic()
    await wait_for(
        lambda: offline(chatty["agent_id"]),
        timeout=ttl + 2,
        what="chatty agent offline after it stopped",
    )
    assert time.monotonic() - silent_since <= ttl + 2

    back = await client.post(f"/agents/{quiet['agent_id']}/heartbeat")
    assert back.status_code == 200
    await wait_for(
        lambda: _status_is(client, quiet["agent_id"], "online"),
        timeout=10,
        what="agent back online",
    )
    busy = await client.put(f"/agents/{quiet['agent_id']}/status", json={"status": "busy"})
    assert busy.status_code == 200 and busy.json()["status"] == "busy"
    types = [e["type"] for e in (await client.get("/events", params={"limit": 1000})).json()]
    assert types.count("agent.expired") >= 2


async def _status_is(client: Any, agent_id: str, status: str) -> bool:
    return (await client.get(f"/agents/{agent_id}")).json()["status"] == status


async def test_bad_input_gets_clear_errors(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    missing_version = await client.post("/agents", json={"name": "x"})
    assert missing_version.status_code == 422
    assert "version" in missing_version.text
    not_json = await client.post(
        "/agents", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    unknown_field = await client.post("/agents", json={**card(), "colour": "blue"})
    assert unknown_field.status_code == 422
    bad_ttl = await client.post("/agents", params={"ttl": "-1"}, json=card())
    assert bad_ttl.status_code == 422
    assert (await client.get("/agents/does-not-exist")).status_code == 404
    assert (await client.post("/agents/does-not-exist/heartbeat")).status_code == 404
    assert (await client.get("/agents/bad id!")).status_code == 422
    bad_status = await client.put("/agents/x/status", json={"status": "offline"})
    assert bad_status.status_code == 422, "offline is decided by the hub, not reported"
    assert (await client.get("/agents", params={"status": "sleeping"})).status_code == 422


async def test_undecodable_commands_on_kafka_are_rejected_not_fatal(stack: Any) -> None:
    hub = await stack()
    producer_hub = hub.hub
    topic = hub.settings.topics.agent_commands
    assert producer_hub._producer is not None
    await producer_hub._producer.send_and_wait(topic, key=b"junk", value=b"\xff not json")
    await producer_hub._producer.send_and_wait(topic, key=b"junk", value=b'{"type":"agent.fly"}')
    await wait_for(
        lambda: len([e for e in hub.hub.feed.recent(100) if e.type == "command.rejected"]) >= 2,
        timeout=20,
        what="two rejections",
    )
    # The worker is still deciding.
    ok = await hub.client.post("/agents", json=card("after-junk"))
    assert ok.status_code == 201


async def test_health_reports_broker_worker_and_read_model(stack: Any) -> None:
    hub = await stack()
    health = await hub.client.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok"
    assert body["broker"]["reachable"] and body["read_model"]["caught_up"]
    assert sorted(p for w in body["workers"] for p in w["active_partitions"]) == [0, 1, 2, 3]


async def test_no_worker_means_503_not_a_hang(stack: Any) -> None:
    hub = await stack(workers=0, command_timeout=1.5)
    started = time.monotonic()
    response = await hub.client.post("/agents", json=card())
    assert response.status_code == 503
    assert "worker" in response.json()["detail"]
    assert time.monotonic() - started < 10
    assert (await hub.client.get("/health")).status_code == 503


async def test_a_second_gateway_serves_the_same_registry(stack: Any) -> None:
    hub = await stack()
    agent = (await hub.client.post("/agents", json=card("shared"))).json()
    other = Hub(hub.settings)
    await other.start()
    try:
        assert other.caught_up
        assert registry.get_agent(other, agent["agent_id"]).card.name == "shared"
        await registry.deregister_agent(other, agent["agent_id"])
        await wait_for(
            lambda: hub.hub.directory.get(agent["agent_id"]) is None,
            timeout=10,
            what="the first gateway to see the other's deregistration",
        )
    finally:
        await other.stop()


async def test_listing_agents_goes_a_page_at_a_time(stack: Any) -> None:
    hub = await stack()
    client = hub.client
    for number in range(5):
        created = await client.post("/agents", json=card(name=f"pager-{number}"))
        assert created.status_code == 201, created.text
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"page_size": 2} | ({"page_token": token} if token else {})
        page = (await client.get("/agents", params=params)).json()
        assert page["total"] == 5 and len(page["agents"]) <= 2, page
        seen += [a["card"]["name"] for a in page["agents"]]
        pages += 1
        token = page.get("next_page_token")
        if token is None:
            break
    assert pages == 3 and seen == [f"pager-{n}" for n in range(5)]  # by name, each once
    assert (await client.get("/agents", params={"page_size": 1001})).status_code == 422
    bad = await client.get("/agents", params={"page_token": "bm90LW91cnM="})
    assert bad.status_code == 422 and "page_token" in bad.json()["detail"], bad.text
