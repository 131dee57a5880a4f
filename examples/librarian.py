"""A class-style agent: a librarian that keeps a catalogue in shared memory.

    make up                                   # the hub, in one terminal
    .venv/bin/python examples/librarian.py    # the librarian, in another

Then, from a third terminal:

    # catalogue a book (a task for the capability "catalogue")
    curl -s -X POST localhost:8000/tasks -H 'content-type: application/json' \\
         -d '{"capability": "catalogue", "input": {"title": "Dune"}}'
    # the catalogue, in shared memory
    curl -s localhost:8000/memory/library.catalogue
    # ask it something (it answers the sender with a message; broadcasts it only reads)
    curl -s -X POST localhost:8000/messages -H 'content-type: application/json' \\
         -d '{"from": "<your agent_id>", "to": "<the librarian agent_id>", "content": "count"}'

The catalogue is updated with compare-and-set: two librarians (or a librarian and anyone
else) writing at once never lose a title; the loser of a race reads again and retries. The
librarian also listens to every key under ``library.`` and says when someone else wrote one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from kolony.sdk import (
    Agent,
    AgentCard,
    AgentSkill,
    BusError,
    IncomingMessage,
    MemoryChange,
    Rejected,
    TaskContext,
    on_memory,
    on_message,
    on_task,
)

CATALOGUE = "library.catalogue"


class Librarian(Agent):
    card = AgentCard(
        name="librarian",
        version="1.0.0",
        description="Keeps the shared catalogue of books",
        skills=[AgentSkill(id="catalogue", name="Catalogue a book", tags=["books"])],
    )

    @on_task("catalogue")
    async def catalogue(self, task: TaskContext) -> dict[str, Any]:
        title = str(task.input["title"]).strip()
        if not title:
            raise ValueError("a book needs a title")
        for _ in range(10):  # compare-and-set: retry when someone else wrote first
            current = await self.memory_get(CATALOGUE)
            titles = list(current.value) if current and isinstance(current.value, list) else []
            if title in titles:
                return {"title": title, "books": len(titles), "new": False}
            try:
                await self.memory_set(
                    CATALOGUE,
                    sorted([*titles, title]),
                    expected_version=current.version if current else 0,
                    writers=["*"],
                )
            except Rejected as lost:
                if lost.code != "conflict":
                    raise
                await task.progress(f"the catalogue changed (version {lost.current_version})")
                continue
            return {"title": title, "books": len(titles) + 1, "new": True}
        raise RuntimeError("the catalogue kept changing; try again later")

    @on_message
    async def answer(self, message: IncomingMessage) -> None:
        if message.broadcast:  # news for everyone; nobody is waiting for an answer
            print(f"heard from {message.sender_id}: {message.text}", flush=True)
            return
        current = await self.memory_get(CATALOGUE)
        books = current.value if current and isinstance(current.value, list) else []
        await self.send(message.sender_id, f"{len(books)} books: {', '.join(map(str, books))}")

    @on_memory("library.*")
    async def noticed(self, change: MemoryChange) -> None:
        if change.updated_by != self.agent_id:
            print(f"{change.key} is at version {change.version} now", flush=True)


async def main(seconds: float | None) -> None:
    librarian = Librarian()
    stop = asyncio.Event()
    if seconds is not None:
        asyncio.get_running_loop().call_later(seconds, stop.set)
    print(f"librarian {librarian.agent_id} at work; Ctrl-C to stop", flush=True)
    await librarian.run(until=stop)
    print("librarian stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    try:
        asyncio.run(main(parser.parse_args().seconds))
    except BusError as exc:  # no hub, say: one line, not a traceback
        sys.exit(f"librarian: {exc}")
    except KeyboardInterrupt:
        pass
