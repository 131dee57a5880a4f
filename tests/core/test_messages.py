"""The messages decider: addressing, refusals, dedupe, broadcast, task threads, replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from core import messages
from schemas.a2a import Message, Part, Role
from schemas.base import CommandRejected
from schemas.messages import (
    AckMessages,
    BroadcastMessage,
    DeleteMessage,
    MessagesAcked,
    MessageSent,
    MessagingState,
    SendMessage,
)
from schemas.registry import AgentStatus

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class Network:
    statuses = {"a": AgentStatus.ONLINE, "b": AgentStatus.BUSY, "c": AgentStatus.OFFLINE}
    gone = {"d"}
    tasks = {"t": ("a", "b")}
    gpu = {"b", "c"}

    def status_of(self, agent_id: str) -> AgentStatus | None:
        return self.statuses.get(agent_id)

    def was_registered(self, agent_id: str) -> bool:
        return agent_id in self.statuses or agent_id in self.gone

    def parties_of(self, task_id: str) -> tuple[str, ...] | None:
        return self.tasks.get(task_id)

    def reachable(self, capability: str | None) -> list[str]:
        chosen = self.gpu if capability else set(self.statuses)
        return sorted(a for a in chosen if self.statuses[a] is not AgentStatus.OFFLINE)


NETWORK = Network()


def text(message_id: str | None = None) -> Message:
    return Message(
        message_id=message_id or str(uuid.uuid4()), role=Role.AGENT, parts=[Part(text="x")]
    )


def cmd() -> dict[str, Any]:
    return {"command_id": str(uuid.uuid4()), "issued_at": NOW}


def decide(command: Any, state: MessagingState | None = None) -> list[Any]:
    return messages.decide(command, state or MessagingState(), NOW, NETWORK)


def test_direct_message_to_online_busy_and_offline_agents() -> None:
    [sent] = decide(SendMessage(**cmd(), sender_id="a", to=("b", "c", "a"), message=text()))
    assert isinstance(sent, MessageSent)
    assert sent.recipients == ("b", "c")  # offline agents get it when they return; not self
    assert sent.record.delivery == "direct" and sent.record.seq == 1
    items = messages.deliveries_for(sent)
    assert [(i.agent_id, i.delivery_id) for i in items] == [
        ("b", f"{sent.event_id}:b"),
        ("c", f"{sent.event_id}:c"),
    ]


def test_unknown_and_deregistered_recipients_are_refused() -> None:
    [unknown] = decide(SendMessage(**cmd(), sender_id="a", to=("zed",), message=text()))
    assert isinstance(unknown, CommandRejected) and "is not registered" in unknown.reason
    [gone] = decide(SendMessage(**cmd(), sender_id="a", to=("d",), message=text()))
    assert isinstance(gone, CommandRejected) and "deregistered" in gone.reason
    [nobody] = decide(SendMessage(**cmd(), sender_id="a", message=text()))
    assert isinstance(nobody, CommandRejected) and nobody.code == "invalid"
    [no_task] = decide(SendMessage(**cmd(), sender_id="a", task_id="zz", message=text()))
    assert isinstance(no_task, CommandRejected) and no_task.code == "not_found"


def test_task_thread_and_broadcast() -> None:
    [thread] = decide(SendMessage(**cmd(), sender_id="b", task_id="t", message=text()))
    assert thread.recipients == ("a",) and thread.record.delivery == "task"
    [everyone] = decide(BroadcastMessage(**cmd(), sender_id="a", message=text()))
    assert everyone.recipients == ("b",) and everyone.record.recipient_count == 1
    [gpus] = decide(BroadcastMessage(**cmd(), sender_id="a", capability="GPU", message=text()))
    assert gpus.recipients == ("b",) and gpus.record.capability == "gpu"


def test_a_message_id_and_a_command_are_each_used_once() -> None:
    first = SendMessage(**cmd(), sender_id="a", to=("b",), message=text("m1"))
    events = decide(first)
    state = messages.fold(events)
    assert decide(first, state) == []  # a redelivered command
    [again] = decide(SendMessage(**cmd(), sender_id="a", to=("b",), message=text("m1")), state)
    assert isinstance(again, CommandRejected) and "sent already" in again.reason
    [second] = decide(SendMessage(**cmd(), sender_id="a", to=("b",), message=text()), state)
    assert second.record.seq == 2 and second.seq == 2


def test_acks_deletes_and_replay() -> None:
    log: list[Any] = []
    state = MessagingState()
    for command in [
        SendMessage(**cmd(), sender_id="a", to=("b",), message=text("m1")),
        AckMessages(**cmd(), agent_id="a", message_ids=("x", "x", "y")),
        DeleteMessage(**cmd(), sender_id="a", message_id="m1"),
        DeleteMessage(**cmd(), sender_id="a", message_id="m1"),
    ]:
        events = decide(command, state)
        log.extend(events)
        state = messages.fold(events, state)
    acked = next(e for e in log if isinstance(e, MessagesAcked))
    assert acked.message_ids == ("x", "y")
    assert isinstance(log[-1], CommandRejected) and log[-1].code == "not_found"
    assert messages.fold(log) == state
    assert messages.fold(log + log) == state
