from __future__ import annotations

from datetime import UTC, datetime

from core.queries import capabilities_of, select_agents
from schemas.a2a import AgentCard, AgentSkill
from schemas.registry import AgentStatus, RegisteredAgent

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def agent(
    name: str, *skills: AgentSkill, status: AgentStatus = AgentStatus.ONLINE
) -> RegisteredAgent:
    return RegisteredAgent(
        agent_id=f"id-{name}",
        card=AgentCard(name=name, version="1", skills=list(skills)),
        status=status,
        registered_at=NOW,
        last_seen_at=NOW,
        ttl_seconds=60,
    )


SUMMARIZE = AgentSkill(id="summarize", name="Summarize", tags=["Text", "summaries"])
CODE = AgentSkill(id="code", name="Write code", description="Python and Go", tags=["python"])


def test_capabilities_are_skill_ids_names_and_tags_case_insensitive() -> None:
    assert capabilities_of(agent("s", SUMMARIZE)) == {"summarize", "text", "summaries"}


def test_select_filters_combine_and_sort_by_name() -> None:
    agents = [
        agent("zed", SUMMARIZE),
        agent("amy", SUMMARIZE, CODE),
        agent("bob", CODE, status=AgentStatus.OFFLINE),
    ]
    assert [a.card.name for a in select_agents(agents, capability="SUMMARIES")] == ["amy", "zed"]
    assert [
        a.card.name for a in select_agents(agents, capability="python", status=AgentStatus.ONLINE)
    ] == ["amy"]
    assert [a.card.name for a in select_agents(agents, text="go")] == ["amy", "bob"]
    assert select_agents(agents, capability="nothing") == []
