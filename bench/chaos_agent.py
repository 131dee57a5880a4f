"""The SDK agent ``make chaos`` kills: it takes ``chaos-work`` tasks over Kafka and finishes
each after a short while. Killed with SIGKILL mid-task and started again, it is the same
agent (the same card gives the same id) and finishes what it held.

Its settings come from the environment (``KOLONY_*``), as any Kolony process's do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kolony.sdk import Agent, AgentCard, AgentSkill, TaskContext, on_task
from kolony.settings import Settings

CARD = AgentCard(
    name="chaos-sdk-agent",
    version="1.0.0",
    description="Finishes chaos-work tasks",
    skills=[AgentSkill(id="chaos-work", name="Chaos work")],
)


class ChaosAgent(Agent):
    card = CARD

    @on_task("chaos-work")
    async def work(self, task: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(0.1)  # long enough to be killed in the middle, sometimes
        return {"done": task.id}


if __name__ == "__main__":
    ChaosAgent(settings=Settings()).run_sync()  # until SIGTERM (or SIGKILL, the point)
