"""Queries over agents and tasks, shared by every read side (REST, CLI, MCP)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from schemas.a2a import TaskState
from schemas.registry import AgentStatus, RegisteredAgent
from schemas.tasks import TERMINAL_STATES, TaskRecord

T = TypeVar("T")


def capabilities_of(agent: RegisteredAgent) -> set[str]:
    """What an agent can do, lower-cased: its skills' ids, names and tags."""
    found: set[str] = set()
    for skill in agent.card.skills:
        found.update({skill.id.lower(), skill.name.lower()})
        found.update(tag.lower() for tag in skill.tags)
    return found


def has_capability(agent: RegisteredAgent, capability: str) -> bool:
    return capability.lower() in capabilities_of(agent)


def matches_text(agent: RegisteredAgent, text: str) -> bool:
    """Case-insensitive substring match over name, description and skills."""
    needle = text.lower()
    card = agent.card
    haystacks = [card.name, card.description]
    for skill in card.skills:
        haystacks.extend([skill.id, skill.name, skill.description, *skill.tags])
    return any(needle in hay.lower() for hay in haystacks)


def select_agents(
    agents: Iterable[RegisteredAgent],
    *,
    capability: str | None = None,
    status: AgentStatus | None = None,
    text: str | None = None,
    present: bool = False,
) -> list[RegisteredAgent]:
    """Agents matching every given filter (``present``: not offline), ordered by name then id."""
    chosen = [
        agent
        for agent in agents
        if (capability is None or has_capability(agent, capability))
        and (status is None or agent.status is status)
        and not (present and agent.status is AgentStatus.OFFLINE)
        and (text is None or matches_text(agent, text))
    ]
    return sorted(chosen, key=lambda a: (a.card.name.lower(), a.agent_id))


def is_overdue(task: TaskRecord, now: datetime) -> bool:
    """Open and past its due time (the worker also marks it, within a timer tick)."""
    if task.status.state in TERMINAL_STATES or task.due_at is None:
        return False
    return task.overdue or task.due_at <= now


@dataclass(frozen=True)
class TaskFilter:
    """``GET /tasks`` filters; every given one must match."""

    context_id: str | None = None
    states: frozenset[TaskState] = frozenset()
    assignee_id: str | None = None
    requester_id: str | None = None
    capability: str | None = None
    priority: int | None = None
    pending: bool | None = None  # submitted, not started yet (seed 003's "pending")
    open: bool | None = None
    overdue: bool | None = None

    def matches(self, task: TaskRecord, now: datetime) -> bool:
        state = task.status.state
        checks = (
            self.context_id is None or task.context_id == self.context_id,
            not self.states or state in self.states,
            self.assignee_id is None or task.assignee_id == self.assignee_id,
            self.requester_id is None or task.requester_id == self.requester_id,
            self.capability is None or task.capability == self.capability.lower(),
            self.priority is None or task.priority == self.priority,
            self.pending is None or (state is TaskState.SUBMITTED) == self.pending,
            self.open is None or (state not in TERMINAL_STATES) == self.open,
            self.overdue is None or is_overdue(task, now) == self.overdue,
        )
        return all(checks)


def select_tasks(tasks: Iterable[TaskRecord], where: TaskFilter, now: datetime) -> list[TaskRecord]:
    """Matching tasks, newest first."""
    chosen = [task for task in tasks if where.matches(task, now)]
    return sorted(chosen, key=lambda t: (t.created_at, t.id), reverse=True)


def page_of(items: list[T], page_size: int, page_token: str | None) -> tuple[list[T], str | None]:
    """One page of ``items`` and the token of the next one (None: this is the last)."""
    start = decode_page_token(page_token)
    end = start + page_size
    return items[start:end], (encode_page_token(end) if end < len(items) else None)


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset a page token stands for; :class:`ValueError` for a token we did not make."""
    if not token:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid page_token {token!r}") from exc
    if kind != "offset" or offset < 0:
        raise ValueError(f"invalid page_token {token!r}")
    return offset
