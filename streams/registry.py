"""The agent registry processor: decides agent commands, keeps liveness, expires the silent."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import faust

from core.registry import decide, evolve, expiry_command_id, initial_state
from kolony.settings import Settings
from schemas.registry import (
    AGENT_COMMAND,
    AGENT_EVENT,
    AGENT_STATE,
    AgentCommand,
    AgentEvent,
    AgentState,
    AgentStatus,
    ExpireAgent,
    RecordHeartbeat,
    RegisterAgent,
)
from schemas.topics import AGENTS_TABLE
from streams.codec import AGENT_STATE_CODEC
from streams.policies import registry_policy
from streams.shell import BatchDecider, rejected
from streams.view import NetworkView

logger = logging.getLogger(__name__)


class RegistryProcessor(BatchDecider[AgentCommand, AgentEvent, AgentState]):
    """Faust shell around :mod:`core.registry`: one writer per agent id.

    Heartbeats mostly change nothing durable: the decider persists one per agent per
    ``ttl / 3`` and the exact time of the last one lives in ``_deadlines``. After a
    restart every live agent gets a fresh TTL from the moment its partition recovered,
    as Kafka's own group coordinator does for its members after a failover.
    """

    command_adapter = AGENT_COMMAND
    event_adapter = AGENT_EVENT
    state_adapter = AGENT_STATE
    state_codec = AGENT_STATE_CODEC

    def __init__(self, app: faust.App, settings: Settings, view: NetworkView) -> None:
        topics = settings.topics
        super().__init__(
            app,
            settings,
            commands=topics.agent_commands,
            events=topics.agent_events,
            table=AGENTS_TABLE,
            name=f"{topics.prefix}.agents.decider",
        )
        self.policy = registry_policy(settings)
        self.view = view
        self.table.on_recover(self._on_recovered)
        # agent id -> when it goes silent; only agents that are not offline.
        self._deadlines: dict[str, datetime] = {}
        # agent id -> the expiry command already sent for it.
        self._expiring: dict[str, str] = {}
        app.timer(settings.liveness_interval, name=f"{topics.prefix}.agents.liveness")(
            self._expire_silent
        )

    def initial(self) -> AgentState:
        return initial_state()

    def decide(self, command: AgentCommand, state: AgentState, now: datetime) -> list[AgentEvent]:
        if isinstance(command, ExpireAgent):
            # Answered, whatever the answer: the timer may ask again if still silent.
            self._expiring.pop(command.agent_id, None)
            command = self._with_known_last_seen(command, state)
        return decide(command, state, now, self.policy)

    def evolve(self, state: AgentState, event: AgentEvent) -> AgentState:
        return evolve(state, event)

    def decided_one(
        self,
        key: str,
        command: AgentCommand | None,
        state: AgentState,
        steps: list[tuple[AgentEvent, AgentState, AgentState]],
        now: datetime,
    ) -> None:
        from_agent = isinstance(command, RecordHeartbeat | RegisterAgent)
        if not from_agent and not steps:
            return
        if steps:
            # The worker's own decisions reach its view at once, not a fetch later: a
            # task or message right after a registration finds the agent.
            self.view.directory.apply_state(key, state)
        heard = from_agent and not rejected([event for event, _, _ in steps])
        self._track(key, state, heard_at=now if heard else None)

    def _with_known_last_seen(self, command: ExpireAgent, state: AgentState) -> ExpireAgent:
        """An expiry is judged against the latest sign of life this worker knows of."""
        deadline = self._deadlines.get(command.agent_id)
        if deadline is None or state.agent is None:
            return command
        known = deadline - timedelta(seconds=state.agent.ttl_seconds)
        return command.model_copy(update={"last_seen_at": max(known, command.last_seen_at)})

    async def _expire_silent(self) -> None:
        """Ask, through the log, to expire each owned agent whose deadline has passed."""
        now = datetime.now(UTC)
        overdue = [key for key, deadline in self._deadlines.items() if deadline < now]
        if not overdue:
            return
        owned = self.owned_partitions()
        for key in overdue:
            state = self.current(key)
            if not self.owns(key, owned) or state is None or state.agent is None:
                self._deadlines.pop(key, None)
                continue
            command_id = expiry_command_id(key, state)
            if self._expiring.get(key) == command_id:
                continue  # asked already; the answer is on its way
            self._expiring[key] = command_id
            last_seen = self._deadlines[key] - timedelta(seconds=state.agent.ttl_seconds)
            self.send_command(
                ExpireAgent(
                    command_id=command_id,
                    issued_at=now,
                    issued_by="liveness-timer",
                    agent_id=key,
                    last_seen_at=last_seen,
                ),
            )

    def agents_owned(self) -> int:
        return len(self._deadlines)

    def _track(self, key: str, state: AgentState, heard_at: datetime | None) -> None:
        """Move an agent's silence deadline to the latest sign of life we know of."""
        agent = state.agent
        self._expiring.pop(key, None)
        if agent is None or agent.status is AgentStatus.OFFLINE:
            self._deadlines.pop(key, None)
            return
        ttl = timedelta(seconds=agent.ttl_seconds)
        candidates = [agent.last_seen_at + ttl]
        if heard_at is not None:
            candidates.append(heard_at + ttl)
        if key in self._deadlines:
            candidates.append(self._deadlines[key])
        self._deadlines[key] = max(candidates)

    async def _on_recovered(self) -> None:
        """Rebuild the liveness deadlines from the recovered table (a fresh TTL for all)."""
        now = datetime.now(UTC)
        owned = self.owned_partitions()
        self._deadlines.clear()
        self._expiring.clear()
        for key, state in self.table.items():
            if self.owns(key, owned) and state.agent is not None:
                self._track(key, state, heard_at=now)
        logger.info(
            "registry recovered: %d live agents on partitions %s",
            len(self._deadlines),
            sorted(owned),
        )
