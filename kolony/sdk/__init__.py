"""Kolony's client library for agents.

``Agent`` puts an agent on the network over Kafka in a few lines, in decorator or class
style (``kolony/sdk/agent.py``); ``BusClient`` registers an agent with a gateway over HTTP
and keeps it registered, with the shape and behaviour of Thronglets' client of that name::

    from kolony.sdk import AgentCard, BusClient

    card = AgentCard(name="my-agent", description="A sample agent", version="1.0.0")
    with BusClient(url="http://localhost:8000", agent_card=card) as client:
        print(client.agent_id, client.mcp_address)
"""

from kolony.sdk.agent import Agent
from kolony.sdk.bus import BusClient
from kolony.sdk.errors import BusError, Rejected
from kolony.sdk.handlers import (
    IncomingMessage,
    TaskContext,
    TaskHandle,
    on_memory,
    on_message,
    on_task,
)
from kolony.sdk.sync import SyncAgent, SyncTaskHandle
from kolony.sdk.transport import MemoryChange
from schemas.a2a import AgentCard, AgentSkill, TaskState

__all__ = [
    "Agent",
    "AgentCard",
    "AgentSkill",
    "BusClient",
    "BusError",
    "IncomingMessage",
    "MemoryChange",
    "Rejected",
    "SyncAgent",
    "SyncTaskHandle",
    "TaskContext",
    "TaskHandle",
    "TaskState",
    "on_memory",
    "on_message",
    "on_task",
]
