"""Queries over registry state, shared by every read side (REST, CLI, MCP)."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.registry import AgentStatus, RegisteredAgent


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
) -> list[RegisteredAgent]:
    """Agents matching every given filter, ordered by name then id."""
    chosen = [
        agent
        for agent in agents
        if (capability is None or has_capability(agent, capability))
        and (status is None or agent.status is status)
        and (text is None or matches_text(agent, text))
    ]
    return sorted(chosen, key=lambda a: (a.card.name.lower(), a.agent_id))
