"""The agent registry's public records, commands and events."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from schemas.a2a import AgentCard
from schemas.base import CommandEnvelope, CommandRejected, EntityId, EventEnvelope, Frozen
from schemas.memory import SubscriptionPattern

TtlSeconds = Annotated[float, Field(gt=0, le=86_400)]


class AgentStatus(StrEnum):
    """``online``/``offline`` are decided by the hub; ``busy``/``error`` reported by the agent."""

    ONLINE = "online"
    BUSY = "busy"
    ERROR = "error"
    OFFLINE = "offline"


ReportableStatus = Literal[AgentStatus.ONLINE, AgentStatus.BUSY, AgentStatus.ERROR]


class RegisteredAgent(Frozen):
    """An agent as the registry knows it (Thronglets' ``RegisteredAgent``, extended)."""

    agent_id: EntityId
    card: AgentCard
    status: AgentStatus = AgentStatus.ONLINE
    registered_at: AwareDatetime
    last_seen_at: AwareDatetime
    ttl_seconds: float
    subscriptions: tuple[str, ...] = Field(
        default=(), description="memory keys and prefixes (ending in *) it hears about"
    )


# Commands: imperative, keyed by agent_id on the agents command topic.


class RegisterAgent(CommandEnvelope):
    """Register an agent, or renew it when it is registered already (a renewal is a heartbeat)."""

    type: Literal["agent.register"] = "agent.register"
    agent_id: EntityId
    card: AgentCard
    ttl_seconds: TtlSeconds | None = None


class RecordHeartbeat(CommandEnvelope):
    """The agent is alive; optionally it reports busy / error / online."""

    type: Literal["agent.heartbeat"] = "agent.heartbeat"
    agent_id: EntityId
    status: ReportableStatus | None = None


class DeregisterAgent(CommandEnvelope):
    type: Literal["agent.deregister"] = "agent.deregister"
    agent_id: EntityId
    reason: str | None = Field(default=None, max_length=1_000)


class ExpireAgent(CommandEnvelope):
    """Mark a silent agent offline. The liveness timer of the agent's worker sends it;
    it takes effect only if that worker, too, has heard nothing for the agent's TTL."""

    type: Literal["agent.expire"] = "agent.expire"
    agent_id: EntityId
    last_seen_at: AwareDatetime


class SubscribeMemory(CommandEnvelope):
    """Hear about changes to these memory keys or prefixes (``inbox.memory_updated``)."""

    type: Literal["agent.subscribe"] = "agent.subscribe"
    agent_id: EntityId
    patterns: tuple[SubscriptionPattern, ...] = Field(min_length=1, max_length=100)


class UnsubscribeMemory(CommandEnvelope):
    type: Literal["agent.unsubscribe"] = "agent.unsubscribe"
    agent_id: EntityId
    patterns: tuple[SubscriptionPattern, ...] = Field(min_length=1, max_length=100)


MAX_SUBSCRIPTIONS = 1_000

AgentCommand = Annotated[
    RegisterAgent
    | RecordHeartbeat
    | DeregisterAgent
    | ExpireAgent
    | SubscribeMemory
    | UnsubscribeMemory,
    Field(discriminator="type"),
]
AGENT_COMMAND = TypeAdapter(AgentCommand)


# Events: past tense, keyed by agent_id on the agents event topic.


class AgentRegistered(EventEnvelope):
    type: Literal["agent.registered"] = "agent.registered"
    agent_id: str
    card: AgentCard
    ttl_seconds: float


class AgentRenewed(EventEnvelope):
    """A registration of a registered agent: the card may change, the id does not."""

    type: Literal["agent.renewed"] = "agent.renewed"
    agent_id: str
    card: AgentCard
    ttl_seconds: float


class AgentHeartbeatRecorded(EventEnvelope):
    """A heartbeat persisted to the log (at most one per agent per persist interval)."""

    type: Literal["agent.heartbeat_recorded"] = "agent.heartbeat_recorded"
    agent_id: str


class AgentStatusChanged(EventEnvelope):
    type: Literal["agent.status_changed"] = "agent.status_changed"
    agent_id: str
    status: AgentStatus
    previous: AgentStatus


class AgentExpired(EventEnvelope):
    """No sign of life within the TTL: the agent is offline until it heartbeats again."""

    type: Literal["agent.expired"] = "agent.expired"
    agent_id: str
    last_seen_at: AwareDatetime


class AgentDeregistered(EventEnvelope):
    type: Literal["agent.deregistered"] = "agent.deregistered"
    agent_id: str
    reason: str | None = None


class AgentSubscriptionsChanged(EventEnvelope):
    type: Literal["agent.subscriptions_changed"] = "agent.subscriptions_changed"
    agent_id: str
    subscriptions: tuple[str, ...]


AgentEvent = Annotated[
    AgentRegistered
    | AgentRenewed
    | AgentHeartbeatRecorded
    | AgentStatusChanged
    | AgentExpired
    | AgentDeregistered
    | AgentSubscriptionsChanged
    | CommandRejected,
    Field(discriminator="type"),
]
AGENT_EVENT = TypeAdapter(AgentEvent)


class AgentState(Frozen):
    """The registry decider's state for one agent id: the table's value.

    ``agent`` is None before the first registration and after deregistration; ``seq``
    keeps counting across both, so a replayed old event is always recognised.
    """

    agent: RegisteredAgent | None = None
    seq: int = 0
    recent_command_ids: tuple[str, ...] = ()


AGENT_STATE = TypeAdapter(AgentState)
