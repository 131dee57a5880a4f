"""Kolony's client library for agents.

``BusClient`` registers an agent with a Kolony gateway over HTTP and keeps it registered,
with the shape and behaviour of Thronglets' client of the same name::

    from kolony.sdk import AgentCard, BusClient

    card = AgentCard(name="my-agent", description="A sample agent", version="1.0.0")
    with BusClient(url="http://localhost:8000", agent_card=card) as client:
        print(client.agent_id, client.mcp_address)
"""

from kolony.sdk.bus import BusClient, BusError
from schemas.a2a import AgentCard, AgentSkill

__all__ = ["AgentCard", "AgentSkill", "BusClient", "BusError"]
