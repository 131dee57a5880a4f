"""The agent directory every worker routes by and the gateway reads: folded from the events the
real deciders make, it knows who has which capability, who is online and how busy, who is in
a task's thread, and who listens to which memory keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core import registry, tasks
from core.directory import AgentDirectory
from schemas.a2a import AgentCard, AgentSkill
from schemas.registry import (
    DeregisterAgent,
    RecordHeartbeat,
    RegisterAgent,
    SubscribeMemory,
)
from schemas.tasks import CancelTask, SubmitTask

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REGISTRY = registry.RegistryPolicy()
TASKS = tasks.TaskPolicy(default_ttl_seconds=600, default_max_retries=2)


class Network:
    """Commands through the real deciders, their events into a directory."""

    def __init__(self) -> None:
        self.directory = AgentDirectory()
        self.agents: dict[str, Any] = {}
        self.tasks: dict[str, Any] = {}
        self.events: list[Any] = []
        self._n = 0

    def envelope(self) -> dict[str, Any]:
        self._n += 1
        return {"command_id": f"c{self._n}", "issued_at": T0}

    def agent(self, command: Any) -> list[Any]:
        state = self.agents.get(command.agent_id) or registry.initial_state()
        events = registry.decide(command, state, T0, REGISTRY)
        for event in events:
            state = registry.evolve(state, event)
            self.directory.apply(event)
        self.agents[command.agent_id] = state
        self.events += events
        return events

    def task(self, command: Any) -> list[Any]:
        entry = self.tasks.get(command.task_id) or tasks.initial_state()
        events = tasks.decide(command, entry, T0, self.directory, TASKS)
        for event in events:
            entry = tasks.evolve(entry, event)
            self.directory.apply_task(event)
        self.tasks[command.task_id] = entry
        self.events += events
        return events

    def register(self, agent_id: str, *skills: str) -> None:
        card = AgentCard(
            name=agent_id, version="1", skills=[AgentSkill(id=s, name=s) for s in skills]
        )
        self.agent(RegisterAgent(**self.envelope(), agent_id=agent_id, card=card))

    def submit(self, task_id: str, capability: str, requester: str | None = None) -> str | None:
        self.task(
            SubmitTask(
                **self.envelope(), task_id=task_id, capability=capability, requester_id=requester
            )
        )
        record = self.tasks[task_id].task
        return record.assignee_id if record else None


def test_tasks_go_to_the_least_loaded_online_agent_with_the_capability() -> None:
    net = Network()
    net.register("a", "sum")
    net.register("b", "sum", "translate")
    net.register("c", "translate")
    assigned = [net.submit(f"t{i}", "sum") for i in range(4)]
    assert sorted(assigned) == ["a", "a", "b", "b"]  # spread evenly, ties by id
    assert net.directory.workload.open_tasks("a") == 2
    assert net.directory.least_loaded("SUM") in ("a", "b")  # capabilities ignore case


def test_a_finished_task_frees_its_agent() -> None:
    net = Network()
    net.register("a", "sum")
    net.register("b", "sum")
    first = net.submit("t1", "sum")
    assert first == "a"
    assert net.directory.least_loaded("sum") == "b"
    net.task(CancelTask(**net.envelope(), task_id="t1"))
    assert net.directory.workload.open_tasks("a") == 0
    assert net.directory.least_loaded("sum") == "a"


def test_only_online_agents_get_work_and_a_deregistered_one_is_gone() -> None:
    net = Network()
    net.register("a", "sum")
    assert net.directory.can_route("sum")
    net.agent(DeregisterAgent(**net.envelope(), agent_id="a"))
    assert net.directory.get("a") is None and net.directory.status_of("a") is None
    assert not net.directory.can_route("sum")
    assert net.submit("t1", "sum") is None  # waits, submitted, for someone able
    assert net.directory.was_registered("a")


def test_folding_the_same_events_again_changes_nothing() -> None:
    net = Network()
    net.register("a", "sum")
    net.agent(RecordHeartbeat(**net.envelope(), agent_id="a"))
    net.submit("t1", "sum", requester="boss")
    again = AgentDirectory()
    for event in net.events * 2:  # every event twice, as from the log and the worker
        if event.type.startswith("agent."):
            again.apply(event)
        else:
            again.apply_task(event)
    assert again.workload.open_tasks("a") == net.directory.workload.open_tasks("a") == 1
    assert again.get("a") == net.directory.get("a")
    assert again.parties_of("t1") == ("boss", "a")


def test_memory_subscribers_by_key_and_prefix() -> None:
    net = Network()
    net.register("a")
    net.register("b")
    net.agent(SubscribeMemory(**net.envelope(), agent_id="a", patterns=("notes.*",)))
    net.agent(SubscribeMemory(**net.envelope(), agent_id="b", patterns=("notes.today",)))
    assert net.directory.subscribers_of("notes.today") == {"a", "b"}
    assert net.directory.subscribers_of("notes.old") == {"a"}
    assert net.directory.subscribers_of("plans") == set()
