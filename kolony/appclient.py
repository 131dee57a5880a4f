"""Talking to MCP apps: the health probe, tool listing, and client sessions.

The worker probes and lists; the gateway's proxy holds sessions. A health probe is a plain
HTTP GET of the app's ``health_check_url``: it never costs the app a tool listing.

The MCP client is imported on the first session, not with this module: it takes about 0.9 s,
and a worker on a network without apps (and every worker restart) would pay it for nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

import httpx

from schemas.apps import MAX_TOOLS, AppTool

if TYPE_CHECKING:
    from mcp import Client

Protocol = Literal["legacy", "auto"]


async def probe(client: httpx.AsyncClient, url: str, within: float) -> tuple[bool, str | None]:
    """``(True, None)`` when ``url`` answers below 400 ``within`` seconds; else why not."""
    try:
        response = await client.get(url, timeout=within)
    except httpx.TimeoutException:
        return False, f"no answer within {within:g} s"
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"[:1_000]
    if response.status_code >= 400:
        return False, f"HTTP {response.status_code}"
    return True, None


@asynccontextmanager
async def connect(
    url: str,
    *,
    within: float,
    headers: Mapping[str, str] | None = None,
    protocol: Protocol = "auto",
) -> AsyncIterator[Client]:
    """An MCP client session with the app at ``url`` (streamable HTTP); each request
    must be answered ``within`` seconds."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=dict(headers or {}), timeout=within)
    async with (
        http,
        Client(
            streamable_http_client(url, http_client=http),
            mode=protocol,
            read_timeout_seconds=within,
            cache=None,
        ) as client,
    ):
        yield client


async def list_tools(client: Client) -> tuple[AppTool, ...]:
    """Every tool the app serves, following its pages (at most :data:`MAX_TOOLS`)."""
    tools: list[AppTool] = []
    cursor: str | None = None
    while len(tools) < MAX_TOOLS:
        page = await client.list_tools(cursor=cursor)
        tools.extend(
            AppTool(name=t.name, description=t.description, input_schema=dict(t.input_schema))
            for t in page.tools
        )
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(tools[:MAX_TOOLS])


async def discover_tools(url: str, *, within: float, protocol: Protocol) -> tuple[AppTool, ...]:
    async with connect(url, within=within, protocol=protocol) as client:
        return await list_tools(client)
