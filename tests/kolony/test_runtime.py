"""Starting the worker and the gateway together (kolony/cli/runtime.py, _enter_together)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from kolony.cli.runtime import _enter_together


def service(name: str, events: list[str], *, fails: bool = False, slow: bool = False) -> object:
    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[str]:
        await asyncio.sleep(0.2 if slow else 0.01)
        if fails:
            raise RuntimeError(f"{name} could not start")
        events.append(f"{name} started")
        try:
            yield name
        finally:
            events.append(f"{name} stopped")

    return run()


async def test_both_start_and_stop_in_reverse_order() -> None:
    events: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        started = await _enter_together(
            stack, [service("worker", events, slow=True), service("gateway", events)]
        )
        assert started == ["worker", "gateway"]
    assert events == ["gateway started", "worker started", "gateway stopped", "worker stopped"]


async def test_one_failing_stops_the_other_and_raises() -> None:
    events: list[str] = []
    with pytest.raises(RuntimeError, match="gateway could not start"):
        async with contextlib.AsyncExitStack() as stack:
            await _enter_together(
                stack, [service("worker", events), service("gateway", events, fails=True)]
            )
    assert events == ["worker started", "worker stopped"]


async def test_a_cancelled_start_stops_what_started() -> None:
    """The worker started, the gateway is still starting, and the start is cancelled."""
    events: list[str] = []

    async def start() -> None:
        async with contextlib.AsyncExitStack() as stack:
            await _enter_together(
                stack, [service("worker", events), service("gateway", events, slow=True)]
            )

    task = asyncio.create_task(start())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == ["worker started", "worker stopped"]
