"""The app proxy: ``app__execute`` through the hub next to a direct MCP call to the app.

The example notebook app runs as a process of its own, registered with a gateway process;
the measuring client is this process. Each call is the app's ``echo`` tool.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from mcp import Client

from bench.stats import Latency
from kolony.appclient import connect
from kolony.broker import free_port

EXAMPLE = Path(__file__).parent.parent / "examples" / "notebook_app.py"


@dataclass(frozen=True)
class ProxyReport:
    direct: Latency
    proxied_mcp: Latency
    proxied_rest: Latency
    direct_calls_per_s: float
    proxied_calls_per_s: float
    concurrency: int

    @property
    def overhead_p50_ms(self) -> float:
        return self.proxied_mcp.p50_ms - self.direct.p50_ms

    @property
    def overhead_p99_ms(self) -> float:
        return self.proxied_mcp.p99_ms - self.direct.p99_ms


async def _sequential(call: Callable[[int], Awaitable[Any]], count: int) -> Latency:
    for i in range(min(50, count)):  # warm up: sessions open, connections pooled
        await call(i)
    samples = []
    for i in range(count):
        started = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - started) * 1000)
    return Latency.of(samples)


async def _throughput(calls: list[Callable[[int], Awaitable[Any]]], seconds: float) -> float:
    """Calls per second with one caller per entry of ``calls``, each waiting for its answer."""
    done = 0
    deadline = time.monotonic() + seconds

    async def caller(call: Callable[[int], Awaitable[Any]]) -> None:
        nonlocal done
        i = 0
        while time.monotonic() < deadline:
            await call(i)
            done += 1
            i += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(c) for c in calls))
    return done / (time.monotonic() - started)


def _checked(result: Any) -> Any:
    if result.is_error:
        raise RuntimeError(f"the call failed: {result.content}")
    return result


async def proxy_overhead(
    gateway: str, workdir: Path, calls: int, seconds: float, concurrency: int
) -> ProxyReport:
    port = free_port()
    log = (workdir / "notebook-app.log").open("ab")
    app_process = await asyncio.create_subprocess_exec(
        *(sys.executable, str(EXAMPLE), "--port", str(port), "--hub", gateway, "--name", "bench"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
            app_id = await _wait_registered(http, "bench")
            agents = []
            for i in range(concurrency):
                answer = await http.post(
                    "/agents", json={"name": f"proxy-bench-{i}", "version": "1.0.0"}
                )
                answer.raise_for_status()
                agents.append(answer.json()["agent_id"])
            app_url = f"http://127.0.0.1:{port}/mcp"

            async with connect(app_url, within=30) as direct:
                direct_latency = await _sequential(lambda i: _echo_direct(direct, i), calls)
            async with Client(f"{gateway}/bus/mcp?agent_id={agents[0]}") as hub:
                proxied_latency = await _sequential(lambda i: _echo_proxied(hub, app_id, i), calls)

            async def rest(i: int) -> None:
                answer = await http.post(
                    f"/apps/{app_id}/execute",
                    json={"tool_name": "echo", "arguments": {"value": i}, "agent_id": agents[0]},
                )
                answer.raise_for_status()

            rest_latency = await _sequential(rest, calls)

            direct_rate = await _throughput_direct(app_url, concurrency, seconds)
            proxied_rate = await _throughput_proxied(gateway, app_id, agents, seconds)
    finally:
        app_process.terminate()
        await asyncio.wait_for(app_process.wait(), 10)
        log.close()
    return ProxyReport(
        direct=direct_latency,
        proxied_mcp=proxied_latency,
        proxied_rest=rest_latency,
        direct_calls_per_s=direct_rate,
        proxied_calls_per_s=proxied_rate,
        concurrency=concurrency,
    )


async def _echo_direct(client: Client, i: int) -> None:
    _checked(await client.call_tool("echo", {"value": i}))


async def _echo_proxied(client: Client, app_id: str, i: int) -> None:
    _checked(
        await client.call_tool(
            "app__execute", {"app_id": app_id, "tool_name": "echo", "arguments": {"value": i}}
        )
    )


async def _throughput_direct(app_url: str, concurrency: int, seconds: float) -> float:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(app_url, within=30)) for _ in range(concurrency)
        ]
        return await _throughput([_bind(_echo_direct, c) for c in clients], seconds)


async def _throughput_proxied(
    gateway: str, app_id: str, agents: list[str], seconds: float
) -> float:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(f"{gateway}/bus/mcp?agent_id={agent}"))
            for agent in agents
        ]
        calls = [_bind_proxied(c, app_id) for c in clients]
        for call in calls:  # each agent's session with the app is opened before timing
            await call(0)
        return await _throughput(calls, seconds)


def _bind(
    fn: Callable[[Client, int], Awaitable[None]], client: Client
) -> Callable[[int], Awaitable[None]]:
    return lambda i: fn(client, i)


def _bind_proxied(client: Client, app_id: str) -> Callable[[int], Awaitable[None]]:
    return lambda i: _echo_proxied(client, app_id, i)


async def _wait_registered(http: httpx.AsyncClient, name: str, within: float = 60) -> str:
    """The app's id once it registered and its tools were discovered."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        listed = (await http.get("/apps")).json()
        for app in listed.get("apps", []):
            if app["name"] == name and any(t["name"] == "echo" for t in app.get("tools", [])):
                app_id: str = app["app_id"]
                return app_id
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the {name} app did not register with its tools in {within:g} s")
