"""What every command a Kolony process issues carries: an id, the time, the issuer.

A client may choose the id of the command its request causes (REST: the
``Idempotency-Key`` header; WebSocket: a frame's ``command_id``): a retry with the same id
is then answered with the first outcome instead of being applied twice.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_chosen: ContextVar[str | None] = ContextVar("kolony_command_id", default=None)


@contextlib.contextmanager
def chosen_command_id(command_id: str | None) -> Iterator[None]:
    """The first command issued inside this block takes ``command_id`` (None: a fresh one)."""
    token = _chosen.set(command_id)
    try:
        yield
    finally:
        _chosen.reset(token)


def chosen() -> str | None:
    """The id the client chose for the command being issued, if it chose one."""
    return _chosen.get()


def new_envelope(issued_by: str, correlation_id: str | None = None) -> dict[str, Any]:
    """The envelope fields of a new command (``CommandEnvelope``), issued now."""
    command_id = _chosen.get()
    _chosen.set(None)  # one request, one chosen id: any further command gets its own
    return {
        "command_id": command_id or str(uuid.uuid4()),
        "correlation_id": correlation_id,
        "issued_at": datetime.now(UTC),
        "issued_by": issued_by,
    }
