"""The agent registry decider: register-or-renew, heartbeat, deregister, expire."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.envelopes import envelope, rejection, remember
from schemas.base import CommandRejected, RejectionCode
from schemas.registry import (
    MAX_SUBSCRIPTIONS,
    AgentCommand,
    AgentDeregistered,
    AgentEvent,
    AgentExpired,
    AgentHeartbeatRecorded,
    AgentRegistered,
    AgentRenewed,
    AgentState,
    AgentStatus,
    AgentStatusChanged,
    AgentSubscriptionsChanged,
    DeregisterAgent,
    ExpireAgent,
    RecordHeartbeat,
    RegisterAgent,
    RegisteredAgent,
    SubscribeMemory,
    UnsubscribeMemory,
)


@dataclass(frozen=True)
class RegistryPolicy:
    """Tunables of the registry decider."""

    default_ttl_seconds: float = 60.0
    # A heartbeat reaches the log (and the changelog) at most once per ttl * this.
    heartbeat_persist_fraction: float = 1 / 3


def initial_state() -> AgentState:
    return AgentState()


def decide(
    command: AgentCommand,
    state: AgentState,
    now: datetime,
    policy: RegistryPolicy,
) -> list[AgentEvent]:
    """The events ``command`` causes in ``state`` at time ``now`` (empty: nothing to do)."""
    if command.command_id in state.recent_command_ids:
        return []
    match command:
        case RegisterAgent():
            return _register(command, state, now, policy)
        case RecordHeartbeat():
            return _heartbeat(command, state, now, policy)
        case DeregisterAgent():
            return _deregister(command, state, now)
        case ExpireAgent():
            return _expire(command, state, now)
        case SubscribeMemory() | UnsubscribeMemory():
            return _subscriptions(command, state, now)


def evolve(state: AgentState, event: AgentEvent) -> AgentState:
    """The state after ``event``; an event already applied (``seq`` not newer) changes nothing."""
    if isinstance(event, CommandRejected) or event.seq <= state.seq:
        return state
    agent = state.agent
    match event:
        case AgentRegistered():
            agent = RegisteredAgent(
                agent_id=event.agent_id,
                card=event.card,
                status=AgentStatus.ONLINE,
                registered_at=event.occurred_at,
                last_seen_at=event.occurred_at,
                ttl_seconds=event.ttl_seconds,
            )
        case AgentRenewed() if agent is not None:
            agent = agent.model_copy(
                update={
                    "card": event.card,
                    "ttl_seconds": event.ttl_seconds,
                    "last_seen_at": max(agent.last_seen_at, event.occurred_at),
                    "status": AgentStatus.ONLINE
                    if agent.status is AgentStatus.OFFLINE
                    else agent.status,
                }
            )
        case AgentHeartbeatRecorded() if agent is not None:
            agent = agent.model_copy(
                update={"last_seen_at": max(agent.last_seen_at, event.occurred_at)}
            )
        case AgentStatusChanged() if agent is not None:
            agent = agent.model_copy(
                update={
                    "status": event.status,
                    "last_seen_at": max(agent.last_seen_at, event.occurred_at),
                }
            )
        case AgentExpired() if agent is not None:
            agent = agent.model_copy(update={"status": AgentStatus.OFFLINE})
        case AgentSubscriptionsChanged() if agent is not None:
            agent = agent.model_copy(update={"subscriptions": event.subscriptions})
        case AgentDeregistered():
            agent = None
    return AgentState(
        agent=agent,
        seq=event.seq,
        recent_command_ids=remember(state.recent_command_ids, event.command_id),
    )


def fold(events: Iterable[AgentEvent], state: AgentState | None = None) -> AgentState:
    result = state if state is not None else initial_state()
    for event in events:
        result = evolve(result, event)
    return result


def expiry_command_id(agent_id: str, state: AgentState) -> str:
    """One id per agent version: the timer may ask twice, the decider acts once."""
    return f"expire:{agent_id}:{state.seq}"


def is_expired(agent: RegisteredAgent, last_seen_at: datetime, now: datetime) -> bool:
    """True when an agent last seen at ``last_seen_at`` has outlived its TTL at ``now``."""
    newest = max(agent.last_seen_at, last_seen_at)
    return agent.status is not AgentStatus.OFFLINE and now - newest > timedelta(
        seconds=agent.ttl_seconds
    )


def status_after_heartbeat(agent: RegisteredAgent, reported: AgentStatus | None) -> AgentStatus:
    """A heartbeat sets the reported status, and brings an offline agent back online."""
    if reported is not None:
        return reported
    return AgentStatus.ONLINE if agent.status is AgentStatus.OFFLINE else agent.status


def _register(
    command: RegisterAgent, state: AgentState, now: datetime, policy: RegistryPolicy
) -> list[AgentEvent]:
    ttl = command.ttl_seconds or (
        state.agent.ttl_seconds if state.agent else policy.default_ttl_seconds
    )
    common = envelope(command.command_id, command.correlation_id, state.seq, now)
    if state.agent is None:
        return [
            AgentRegistered(**common, agent_id=command.agent_id, card=command.card, ttl_seconds=ttl)
        ]
    return [AgentRenewed(**common, agent_id=command.agent_id, card=command.card, ttl_seconds=ttl)]


def _heartbeat(
    command: RecordHeartbeat, state: AgentState, now: datetime, policy: RegistryPolicy
) -> list[AgentEvent]:
    agent = state.agent
    if agent is None:
        return [reject(command, now, "not_found", _not_registered(command.agent_id), state.seq)]
    wanted = status_after_heartbeat(agent, command.status)
    if wanted is not agent.status:
        common = envelope(command.command_id, command.correlation_id, state.seq, now)
        return [
            AgentStatusChanged(
                **common, agent_id=agent.agent_id, status=wanted, previous=agent.status
            )
        ]
    persist_every = timedelta(seconds=agent.ttl_seconds * policy.heartbeat_persist_fraction)
    if now - agent.last_seen_at >= persist_every:
        common = envelope(command.command_id, command.correlation_id, state.seq, now)
        return [AgentHeartbeatRecorded(**common, agent_id=agent.agent_id)]
    # Most heartbeats: nothing durable changes (the worker still notes the time).
    return []


def _deregister(command: DeregisterAgent, state: AgentState, now: datetime) -> list[AgentEvent]:
    if state.agent is None:
        return [reject(command, now, "not_found", _not_registered(command.agent_id), state.seq)]
    common = envelope(command.command_id, command.correlation_id, state.seq, now)
    return [AgentDeregistered(**common, agent_id=command.agent_id, reason=command.reason)]


def _expire(command: ExpireAgent, state: AgentState, now: datetime) -> list[AgentEvent]:
    agent = state.agent
    if agent is None or not is_expired(agent, command.last_seen_at, now):
        return []
    common = envelope(command.command_id, command.correlation_id, state.seq, now)
    return [
        AgentExpired(
            **common,
            agent_id=agent.agent_id,
            last_seen_at=max(agent.last_seen_at, command.last_seen_at),
        )
    ]


def _subscriptions(
    command: SubscribeMemory | UnsubscribeMemory, state: AgentState, now: datetime
) -> list[AgentEvent]:
    agent = state.agent
    if agent is None:
        return [reject(command, now, "not_found", _not_registered(command.agent_id), state.seq)]
    if isinstance(command, SubscribeMemory):
        wanted = tuple(dict.fromkeys((*agent.subscriptions, *command.patterns)))
    else:
        wanted = tuple(p for p in agent.subscriptions if p not in command.patterns)
    # An unchanged set is recorded too: the caller is waiting for an answer.
    if len(wanted) > MAX_SUBSCRIPTIONS:
        reason = f"an agent may hold at most {MAX_SUBSCRIPTIONS} memory subscriptions"
        return [reject(command, now, "invalid", reason, state.seq)]
    common = envelope(command.command_id, command.correlation_id, state.seq, now)
    return [AgentSubscriptionsChanged(**common, agent_id=agent.agent_id, subscriptions=wanted)]


def reject(
    command: AgentCommand, now: datetime, code: RejectionCode, reason: str, seq: int = 0
) -> CommandRejected:
    """The rejection of a decodable command."""
    return rejection(
        command.command_id,
        command.correlation_id,
        command.type,
        command.agent_id,
        now,
        code,
        reason,
        seq=seq,
    )


def _not_registered(agent_id: str) -> str:
    return f"agent {agent_id!r} is not registered; register it first (POST /agents)"
