"""Agent registry operations: the one place REST, CLI and MCP all call."""

from __future__ import annotations

from dataclasses import dataclass

from core.queries import page_of, select_agents
from core.registry import status_after_heartbeat
from kolony.commands import new_envelope
from schemas.a2a import AgentCard
from schemas.ids import agent_id_for
from schemas.registry import (
    AgentRegistered,
    AgentStatus,
    DeregisterAgent,
    RecordHeartbeat,
    RegisterAgent,
    RegisteredAgent,
    ReportableStatus,
    SubscribeMemory,
    UnsubscribeMemory,
)
from services.hub import Hub, HubUnavailable


class UnknownAgent(LookupError):
    def __init__(self, agent_id: str, *, deregistered: bool = False) -> None:
        why = "deregistered" if deregistered else "is not registered"
        super().__init__(f"agent {agent_id!r} {why}")
        self.agent_id = agent_id


async def register_agent(
    hub: Hub,
    card: AgentCard,
    *,
    ttl_seconds: float | None = None,
    correlation_id: str | None = None,
    issued_by: str = "gateway",
) -> tuple[RegisteredAgent, bool]:
    """Register ``card``, or renew it: the same name and version always get the same id.
    ``(agent, created)``: created is False for a renewal."""
    agent_id = agent_id_for(card.name, card.version)
    command = RegisterAgent(
        **new_envelope(issued_by, correlation_id),
        agent_id=agent_id,
        card=card,
        ttl_seconds=ttl_seconds,
    )
    event = await hub.execute(command)
    return _require(hub, agent_id), isinstance(event, AgentRegistered)


async def heartbeat(
    hub: Hub,
    agent_id: str,
    *,
    status: ReportableStatus | None = None,
    issued_by: str = "gateway",
) -> RegisteredAgent:
    """Record a sign of life. It answers from the read model without awaiting the worker:
    most heartbeats change nothing durable, so there is no outcome event to wait for."""
    agent = get_agent(hub, agent_id)
    command = RecordHeartbeat(**new_envelope(issued_by), agent_id=agent_id, status=status)
    if status_after_heartbeat(agent, status) is not agent.status:
        await hub.execute(command)
        return _require(hub, agent_id)
    await hub.publish(command)
    return agent


async def deregister_agent(
    hub: Hub, agent_id: str, *, reason: str | None = None, issued_by: str = "gateway"
) -> None:
    command = DeregisterAgent(**new_envelope(issued_by), agent_id=agent_id, reason=reason)
    await hub.execute(command)


def get_agent(hub: Hub, agent_id: str) -> RegisteredAgent:
    require_caught_up(hub)
    agent = hub.directory.get(agent_id)
    if agent is None:
        raise UnknownAgent(agent_id, deregistered=hub.directory.was_registered(agent_id))
    return agent


async def subscribe(
    hub: Hub, agent_id: str, patterns: list[str], *, issued_by: str = "gateway"
) -> tuple[str, ...]:
    """Add memory subscriptions; answers with all of the agent's subscriptions."""
    return await _subscriptions(hub, SubscribeMemory, agent_id, patterns, issued_by)


async def unsubscribe(
    hub: Hub, agent_id: str, patterns: list[str], *, issued_by: str = "gateway"
) -> tuple[str, ...]:
    return await _subscriptions(hub, UnsubscribeMemory, agent_id, patterns, issued_by)


async def _subscriptions(
    hub: Hub,
    kind: type[SubscribeMemory | UnsubscribeMemory],
    agent_id: str,
    patterns: list[str],
    issued_by: str,
) -> tuple[str, ...]:
    get_agent(hub, agent_id)
    command = kind(**new_envelope(issued_by), agent_id=agent_id, patterns=tuple(patterns))
    await hub.execute(command)
    return _require(hub, agent_id).subscriptions


AGENT_PAGE = 100  # agents in a page unless the caller asks for another size
MAX_AGENT_PAGE = 1_000


@dataclass(frozen=True)
class AgentPage:
    agents: list[RegisteredAgent]
    next_page_token: str | None
    total: int  # agents matching the filters, on every page


def list_agents(
    hub: Hub,
    *,
    capability: str | None = None,
    status: AgentStatus | None = None,
    text: str | None = None,
    present: bool = False,
    page_size: int = AGENT_PAGE,
    page_token: str | None = None,
) -> AgentPage:
    """One page of the agents matching the filters, ordered by name then id (``present``:
    not offline). :class:`ValueError` for a page token this hub did not make."""
    require_caught_up(hub)
    chosen = select_agents(
        hub.directory.agents(), capability=capability, status=status, text=text, present=present
    )
    page, next_token = page_of(chosen, min(page_size, MAX_AGENT_PAGE), page_token)
    return AgentPage(agents=page, next_page_token=next_token, total=len(chosen))


def _require(hub: Hub, agent_id: str) -> RegisteredAgent:
    agent = hub.directory.get(agent_id)
    if agent is None:
        raise UnknownAgent(agent_id, deregistered=hub.directory.was_registered(agent_id))
    return agent


def require_caught_up(hub: Hub) -> None:
    if not hub.caught_up:
        raise HubUnavailable("the gateway is still reading the event log; retry shortly")
