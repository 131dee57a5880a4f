"""Who is out there, how busy, in which task threads, listening to which memory keys.

Folded from the logs: :class:`AgentDirectory` from agent events (with the decider's own
``evolve``), :class:`Workload` and :class:`TaskParties` from task events. The gateway
serves reads from them; every stream worker keeps one to route tasks, address messages
and notify memory subscribers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from core import registry
from core.queries import capabilities_of
from schemas.base import CommandRejected
from schemas.registry import AgentEvent, AgentState, AgentStatus, RegisteredAgent
from schemas.tasks import (
    TERMINAL_STATES,
    TaskAssigned,
    TaskDeleted,
    TaskEvent,
    TaskReleased,
    TaskStatusChanged,
    TaskSubmitted,
)

ROUTABLE = AgentStatus.ONLINE
"""Only agents that say they are online get new work (not busy, error or offline ones)."""


class Workload:
    """How many open tasks each agent holds, from task events of every partition.

    Events may arrive twice (from a worker's own decisions and from the log) and a
    little out of order between those two sources; ``seq`` keeps the newest.
    """

    def __init__(self) -> None:
        # task id -> (seq, assignee) for open tasks; closed tasks are forgotten.
        self._open: dict[str, tuple[int, str | None]] = {}
        self._closed_seq: dict[str, int] = {}
        self._counts: dict[str, int] = defaultdict(int)

    def apply(self, event: TaskEvent) -> None:
        if isinstance(event, CommandRejected):
            return
        task_id = event.task.id if isinstance(event, TaskSubmitted) else event.task_id
        known = self._open.get(task_id)
        if (known is not None and event.seq <= known[0]) or event.seq <= self._closed_seq.get(
            task_id, 0
        ):
            return
        assignee = known[1] if known is not None else None
        closed = False
        match event:
            case TaskSubmitted():
                assignee = event.assignment.agent_id if event.assignment else None
            case TaskAssigned():
                assignee = event.assignment.agent_id
            case TaskReleased():
                assignee = event.assignment.agent_id if event.assignment else None
            case TaskStatusChanged():
                closed = event.state in TERMINAL_STATES
            case TaskDeleted():
                closed = True
        self._move(task_id, known[1] if known is not None else None, None if closed else assignee)
        if closed:
            self._open.pop(task_id, None)
            self._closed_seq[task_id] = event.seq
            if len(self._closed_seq) > 100_000:
                # Only needed while the two sources of one task's events disagree.
                for stale in list(self._closed_seq)[:50_000]:
                    del self._closed_seq[stale]
        else:
            self._open[task_id] = (event.seq, assignee)

    def _move(self, task_id: str, before: str | None, after: str | None) -> None:
        if before == after:
            return
        if before is not None:
            self._counts[before] -= 1
            if self._counts[before] <= 0:
                del self._counts[before]
        if after is not None:
            self._counts[after] += 1

    def open_tasks(self, agent_id: str) -> int:
        return self._counts.get(agent_id, 0)


class TaskParties:
    """Each task's requester and assignee: who hears a message in the task's thread."""

    def __init__(self) -> None:
        self._parties: dict[str, tuple[int, str | None, str | None]] = {}

    def apply(self, event: TaskEvent) -> None:
        if isinstance(event, CommandRejected):
            return
        task_id = event.task.id if isinstance(event, TaskSubmitted) else event.task_id
        known = self._parties.get(task_id)
        if known is not None and event.seq <= known[0]:
            return
        requester, assignee = (known[1], known[2]) if known is not None else (None, None)
        match event:
            case TaskSubmitted():
                requester = event.task.requester_id
                assignee = event.assignment.agent_id if event.assignment else None
            case TaskAssigned():
                assignee = event.assignment.agent_id
            case TaskReleased():
                assignee = event.assignment.agent_id if event.assignment else None
            case TaskDeleted():
                self._parties.pop(task_id, None)
                return
        if known is None and not isinstance(event, TaskSubmitted):
            return  # the view started after the task's submission was compacted away
        self._parties[task_id] = (event.seq, requester, assignee)

    def of(self, task_id: str) -> tuple[str, ...] | None:
        known = self._parties.get(task_id)
        if known is None:
            return None
        return tuple(p for p in dict.fromkeys(known[1:]) if p is not None)


class Subscriptions:
    """Which agents listen to which memory keys and prefixes."""

    def __init__(self) -> None:
        self._exact: dict[str, set[str]] = defaultdict(set)
        self._prefix: dict[str, set[str]] = defaultdict(set)

    def change(self, agent_id: str, old: Collection[str], new: Collection[str]) -> None:
        for pattern in set(old) - set(new):
            index, key = self._slot(pattern)
            index[key].discard(agent_id)
            if not index[key]:
                del index[key]
        for pattern in set(new) - set(old):
            index, key = self._slot(pattern)
            index[key].add(agent_id)

    def of(self, key: str) -> set[str]:
        found = set(self._exact.get(key, ()))
        for prefix, agents in self._prefix.items():
            if key.startswith(prefix):
                found |= agents
        return found

    def _slot(self, pattern: str) -> tuple[dict[str, set[str]], str]:
        if pattern.endswith("*"):
            return self._prefix, pattern[:-1]
        return self._exact, pattern


class AgentDirectory:
    """Every agent's state, folded with the decider's own ``evolve``, indexed by capability."""

    def __init__(self) -> None:
        self._states: dict[str, AgentState] = {}
        self._by_capability: dict[str, set[str]] = defaultdict(set)
        self.workload = Workload()
        self.parties = TaskParties()
        self.subscriptions = Subscriptions()

    def apply(self, event: AgentEvent) -> None:
        key = getattr(event, "agent_id", None)
        if key is None:
            return
        before = self._states.get(key) or registry.initial_state()
        self._set(key, before, registry.evolve(before, event))

    def apply_state(self, agent_id: str, state: AgentState) -> None:
        """Take the registry table's state of an agent, if newer than what was folded."""
        before = self._states.get(agent_id) or registry.initial_state()
        if state.seq > before.seq:
            self._set(agent_id, before, state)

    def _set(self, key: str, before: AgentState, after: AgentState) -> None:
        self._states[key] = after
        old = capabilities_of(before.agent) if before.agent else set()
        new = capabilities_of(after.agent) if after.agent else set()
        for capability in old - new:
            self._by_capability[capability].discard(key)
        for capability in new - old:
            self._by_capability[capability].add(key)
        was = before.agent.subscriptions if before.agent else ()
        now = after.agent.subscriptions if after.agent else ()
        if was != now:
            self.subscriptions.change(key, was, now)

    def apply_task(self, event: TaskEvent) -> None:
        self.workload.apply(event)
        self.parties.apply(event)

    def get(self, agent_id: str) -> RegisteredAgent | None:
        state = self._states.get(agent_id)
        return state.agent if state else None

    def agents(self) -> list[RegisteredAgent]:
        return [s.agent for s in self._states.values() if s.agent is not None]

    def state(self, agent_id: str) -> AgentState:
        return self._states.get(agent_id) or registry.initial_state()

    # the roster tasks are routed by (core.tasks.Roster)

    def status_of(self, agent_id: str) -> AgentStatus | None:
        agent = self.get(agent_id)
        return agent.status if agent else None

    def least_loaded(self, capability: str, exclude: Collection[str] = ()) -> str | None:
        """The online agent with ``capability`` holding the fewest open tasks (ties: lowest id)."""
        best: tuple[int, str] | None = None
        for agent_id in self._by_capability.get(capability.lower(), ()):
            if agent_id in exclude or self.status_of(agent_id) is not ROUTABLE:
                continue
            candidate = (self.workload.open_tasks(agent_id), agent_id)
            if best is None or candidate < best:
                best = candidate
        return best[1] if best else None

    def can_route(self, capability: str) -> bool:
        return self.least_loaded(capability) is not None

    # who messages reach (core.messages.Network)

    def was_registered(self, agent_id: str) -> bool:
        return self.state(agent_id).seq > 0

    def parties_of(self, task_id: str) -> tuple[str, ...] | None:
        return self.parties.of(task_id)

    def reachable(self, capability: str | None) -> list[str]:
        """Agents that are not offline, with ``capability`` if given; ordered by id."""
        if capability is None:
            chosen: Collection[str] = self._states.keys()
        else:
            chosen = self._by_capability.get(capability.lower(), set())
        return sorted(a for a in chosen if self.status_of(a) not in (None, AgentStatus.OFFLINE))

    def subscribers_of(self, key: str) -> set[str]:
        """Registered agents subscribed to memory ``key`` (by the key or a prefix of it)."""
        return self.subscriptions.of(key)
