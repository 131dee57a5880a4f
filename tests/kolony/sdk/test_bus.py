"""``kolony.sdk.BusClient``, Thronglets' client, against a gateway served over real HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from mcp import Client

from kolony.sdk import AgentCard, AgentSkill, BusClient, BusError
from schemas.ids import agent_id_for
from tests.conftest import Served, wait_for

pytestmark = pytest.mark.kafka

CARD = AgentCard(
    name="bus-agent",
    description="A sample agent",
    version="1.0.0",
    skills=[AgentSkill(id="sample", name="Sample", tags=["demo"])],
)


async def agent_status(served: Served, agent_id: str) -> tuple[int, str | None]:
    response = await served.stack.client.get(f"/agents/{agent_id}")
    return response.status_code, response.json().get("status")


async def gone(served: Served, agent_id: str) -> bool:
    return (await agent_status(served, agent_id))[0] == 404


async def test_sync_context_manager_registers_renews_and_deregisters(served: Served) -> None:
    expected = agent_id_for("bus-agent", "1.0.0")
    seen: dict[str, object] = {}

    def run() -> None:  # a plain, blocking script, as Thronglets' README shows
        with BusClient(url=served.url, agent_card=CARD, renew_interval=0.3) as client:
            seen["agent_id"] = client.agent_id
            seen["mcp_address"] = client.mcp_address
            seen["first"] = client.registered
            time.sleep(1.5)
            seen["renewals"] = client.renewals

    await asyncio.to_thread(run)
    assert seen["agent_id"] == expected, "the same card name and version give the same id"
    assert seen["mcp_address"] == f"{served.url}/bus/mcp?agent_id={expected}"
    renewals = seen["renewals"]
    assert isinstance(renewals, int) and renewals >= 3, f"renewed {renewals} times in 1.5 s"
    await wait_for(lambda: gone(served, expected), timeout=10, what="deregistration on exit")


async def test_async_context_manager_keeps_the_agent_online(served: Served) -> None:
    async with BusClient(url=served.url, agent_card=CARD, ttl_seconds=2) as client:
        # Thronglets' flow: the MCP address is all an assistant needs to act as the agent.
        async with Client(client.mcp_address) as mcp:
            whoami = await mcp.call_tool("agent__whoami", {})
            assert whoami.structured_content is not None
            assert whoami.structured_content["agent_id"] == client.agent_id
        assert client.interval() == pytest.approx(2 / 3)
        first = client.registered
        assert first is not None and first.ttl_seconds == 2
        # Three TTLs later the agent is still online: the renewals kept it so.
        await asyncio.sleep(6)
        assert client.renewals >= 6
        status, state = await agent_status(served, client.agent_id)
        assert (status, state) == (200, "online")
        hub_view = (await served.stack.client.get(f"/agents/{client.agent_id}")).json()
        assert hub_view["last_seen_at"] > first.last_seen_at.isoformat()
        agent_id = client.agent_id
    await wait_for(lambda: gone(served, agent_id), timeout=10, what="deregistration on exit")


async def test_without_the_context_manager_the_agent_goes_offline_after_its_ttl(
    served: Served,
) -> None:
    client = BusClient(url=served.url, agent_card=CARD, ttl_seconds=1)
    registered = await client.aregister()
    assert registered.status == "online"

    async def offline() -> bool:
        return (await agent_status(served, registered.agent_id))[1] == "offline"

    await wait_for(offline, timeout=20, what="the agent to go offline without renewals")
    await client.arenew()  # a renewal brings it back
    assert (await agent_status(served, registered.agent_id))[1] == "online"
    await client.aunregister()


async def test_refusals_and_unreachable_gateways_are_clear_errors(served: Served) -> None:
    with pytest.raises(BusError, match="422"):
        # A TTL over a day is refused by the gateway; retrying would not help.
        await BusClient(url=served.url, agent_card=CARD, ttl_seconds=10**6).aregister()
    started = time.monotonic()
    with pytest.raises(BusError, match="cannot register"):
        await BusClient(url="http://127.0.0.1:9", agent_card=CARD, register_timeout=1).aregister()
    assert time.monotonic() - started < 5
    with pytest.raises(BusError, match="not registered"):
        _ = BusClient(url=served.url, agent_card=CARD).agent_id
    with pytest.raises(ValueError, match="name"):
        BusClient(url=served.url, agent_card={"description": "no name"})
    assert httpx.URL(BusClient(url=served.url + "/", agent_card=CARD).mcp_address).path == (
        "/bus/mcp"
    )
