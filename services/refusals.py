"""Every refusal the services raise, and what it is called in each protocol: the one table
the REST gateway, the WebSocket and the MCP server answer from.

A refusal is the service saying no (the decider's rejection, something unknown, a read not
allowed, the hub away): an answer with a code from :data:`schemas.errors.ErrorCode`, never a
crash. REST sends the code with its HTTP status (and ``Retry-After`` where retrying helps),
the WebSocket an ``error`` frame with the code, MCP a tool error ``"<code>: <detail>"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import ErrorCode
from services.hub import CommandInvalid, HubUnavailable, Rejected
from services.proxy import AppCallError, AppTimedOut, TooManySessions
from services.usecases.apps import UnknownApp, UnknownTool
from services.usecases.memory import ReadRefused, UnknownKey
from services.usecases.messages import UnknownMessage
from services.usecases.registry import UnknownAgent
from services.usecases.tasks import UnknownTask


class NotBound(Exception):
    """A WebSocket request that needs an agent, on a connection bound to none yet."""


@dataclass(frozen=True)
class Kind:
    """How one type of refusal is answered."""

    code: ErrorCode
    status: int  # HTTP
    retry_after: int | None = None  # seconds, where a retry can succeed


# The decider's rejections carry their code; each has one HTTP status.
REJECTION_STATUS: dict[str, int] = {
    "invalid": 422,
    "not_found": 404,
    "conflict": 409,
    "forbidden": 403,
}

# By type; a type not here is answered as its nearest base class here (see :func:`kind_of`).
KINDS: dict[type[Exception], Kind] = {
    UnknownAgent: Kind("not_found", 404),
    UnknownTask: Kind("not_found", 404),
    UnknownMessage: Kind("not_found", 404),
    UnknownKey: Kind("not_found", 404),
    UnknownApp: Kind("not_found", 404),
    UnknownTool: Kind("not_found", 404),
    ReadRefused: Kind("forbidden", 403),
    CommandInvalid: Kind("invalid", 422),
    NotBound: Kind("invalid", 422),
    AppTimedOut: Kind("app_failed", 504),
    AppCallError: Kind("app_failed", 502),
    TooManySessions: Kind("busy", 429, retry_after=1),
    HubUnavailable: Kind("unavailable", 503, retry_after=1),
    # A value a service refused while building a command (pydantic's ValidationError is one).
    ValueError: Kind("invalid", 422),
}

# What the adapters catch: the rejections and every type in the table.
REFUSALS: tuple[type[Exception], ...] = (Rejected, *KINDS)


@dataclass(frozen=True)
class Refusal:
    """One refusal, as every protocol answers it."""

    code: ErrorCode
    status: int
    detail: str
    retry_after: int | None = None
    current_version: int | None = None  # a compare-and-set's version now (409)

    @property
    def tool_error(self) -> str:
        """The MCP tool error's text."""
        return f"{self.code}: {self.detail}"


def kind_of(exc_type: type[BaseException]) -> Kind | None:
    """The table's entry for ``exc_type``: its own, or its nearest base class's."""
    for cls in exc_type.__mro__:
        kind = KINDS.get(cls)
        if kind is not None:
            return kind
    return None


def refusal(exc: Exception) -> Refusal:
    """How ``exc`` (one of :data:`REFUSALS`) is answered."""
    if isinstance(exc, Rejected):
        code: ErrorCode = exc.code
        status = REJECTION_STATUS[code]
        return Refusal(code, status, exc.reason, current_version=exc.current_version)
    kind = kind_of(type(exc))
    if kind is None:
        raise TypeError(f"{type(exc).__name__} is not a refusal") from exc
    return Refusal(kind.code, kind.status, str(exc), kind.retry_after)
