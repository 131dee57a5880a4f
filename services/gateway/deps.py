"""Dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request

from kolony.commands import chosen_command_id
from kolony.settings import Settings
from schemas.base import ENTITY_ID_PATTERN
from services.hub import Hub


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


HubDep = Annotated[Hub, Depends(get_hub)]
# An id in a path: an agent's, a task's, an app's, a message's (the one rule, schemas.base).
PathId = Annotated[str, Path(min_length=1, max_length=128, pattern=ENTITY_ID_PATTERN)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# Every list answers a page at a time: at most 1,000 items, and a token for the next page.
PageSize = Annotated[int, Query(ge=1, le=1_000, description="items in a page (at most 1,000)")]
PageToken = Annotated[
    str | None, Query(max_length=200, description="the next_page_token of the previous page")
]


async def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=ENTITY_ID_PATTERN,
            max_length=128,
            description="Your id for the command this request causes: repeating the request "
            "with the same key returns the first outcome instead of applying it twice "
            "(for the latest commands; see docs/protocol.md).",
        ),
    ] = None,
) -> AsyncIterator[None]:
    with chosen_command_id(idempotency_key):
        yield
