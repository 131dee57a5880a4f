"""Two agents that cooperate by capability: a researcher delegates briefs to a summarizer.

    make up                                          # the hub, in one terminal
    .venv/bin/python examples/research_team.py       # both agents, in another

or one agent per terminal (start the summarizer first):

    .venv/bin/python examples/research_team.py --role summarizer
    .venv/bin/python examples/research_team.py --role researcher

The researcher never names the summarizer: it asks for the capability ``brief`` and the
hub routes each task to an online agent that has it (the one with the fewest open tasks).
The summarizer reports progress, returns its result, and carries on when a document makes
its handler fail. The agents' names and the capability are the example's own, so it never
takes over (or deregisters) an agent you registered yourself. It finds the hub that
``kolony up`` runs here; KOLONY_BOOTSTRAP_SERVERS and KOLONY_TOPIC_PREFIX select another.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from kolony.sdk import Agent, AgentCard, AgentSkill, BusError, TaskContext, TaskState

DOCUMENTS = [
    "Kafka keeps an ordered log per partition. Consumers remember their offsets. "
    "Producers append records and never rewrite them.",
    "Agents register with a card. The hub routes tasks by capability. "
    "Results flow back to whoever asked.",
    "",  # an empty document: the summarizer refuses it, and the task fails with its reason
]


def summarizer() -> Agent:
    agent = Agent(
        AgentCard(
            name="research-summarizer",
            version="1.0.0",
            description="Writes a one-line brief of plain text",
            skills=[AgentSkill(id="brief", name="Brief", tags=["text"])],
        )
    )

    @agent.on_task("brief")
    async def summarize(task: TaskContext) -> dict[str, object]:
        text = str(task.input.get("text", ""))
        if not text.strip():
            raise ValueError("nothing to summarize")
        await task.progress(f"reading {len(text.split())} words")
        first = text.split(". ")[0].rstrip(".")
        return {"summary": f"{first}.", "words": len(text.split())}

    return agent


def researcher() -> Agent:
    return Agent(AgentCard(name="research-lead", version="1.0.0", description="Asks for briefs"))


async def research(agent: Agent) -> int:
    """Delegate every document at once, then print the results as they come."""
    handles = [await agent.delegate({"text": doc}, capability="brief") for doc in DOCUMENTS]
    failures = 0
    for handle in handles:
        task = await handle.result(within=60)
        if task.status.state == TaskState.COMPLETED:
            print(f"summary ({task.result['words']} words): {task.result['summary']}", flush=True)
        else:
            failures += 1
            print(f"{task.status.state.value}: {task.reason}", flush=True)
    return failures


async def main(role: str, seconds: float) -> None:
    if role == "summarizer":
        await summarizer().run()  # until Ctrl-C
        return
    if role == "researcher":
        async with researcher() as asking:
            await research(asking)
        return
    async with summarizer(), researcher() as asking:
        failures = await asyncio.wait_for(research(asking), seconds)
    print(f"done: {len(DOCUMENTS) - failures} summaries, {failures} failed", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["both", "summarizer", "researcher"], default="both")
    parser.add_argument("--seconds", type=float, default=120, help="give up after this long")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.role, args.seconds))
    except BusError as exc:  # no hub, say: one line, not a traceback
        sys.exit(f"research_team: {exc}")
    except KeyboardInterrupt:
        pass
