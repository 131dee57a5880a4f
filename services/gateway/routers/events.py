"""``/events``: the recent event log, as JSON or as a live Server-Sent Events stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sse_starlette.sse import EventSourceResponse

from schemas.events import ANY_EVENT
from services.gateway.deps import HubDep
from services.gateway.errors import READ_ERRORS

router = APIRouter(tags=["events"], responses=READ_ERRORS)


@router.get("/events", response_model=None)
async def events(
    request: Request,
    hub: HubDep,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 100,
    type: Annotated[
        str | None, Query(max_length=100, description="event type prefix, e.g. agent.")
    ] = None,
    follow: Annotated[bool, Query(description="stream live events as SSE")] = False,
) -> Any:
    """Recent events, newest last; ``follow=true`` (or ``Accept: text/event-stream``) streams."""
    wants_stream = follow or "text/event-stream" in request.headers.get("accept", "")
    if not wants_stream:
        return [
            ANY_EVENT.dump_python(e, mode="json", exclude_none=True)
            for e in hub.feed.recent(limit, type)
        ]

    async def stream() -> AsyncIterator[dict[str, str]]:
        async with hub.feed.subscribe() as queue:
            for event in hub.feed.recent(limit, type):
                yield _sse(event)
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), 15)
                except TimeoutError:
                    continue
                if type is None or event.type.startswith(type):
                    yield _sse(event)

    return EventSourceResponse(stream(), ping=15)


def _sse(event: Any) -> dict[str, str]:
    return {
        "id": event.event_id,
        "event": event.type,
        "data": ANY_EVENT.dump_json(event, exclude_none=True).decode(),
    }
