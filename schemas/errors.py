"""The one shape every refusal has, on REST (and, field for field, WebSocket error frames)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Frozen

ErrorCode = Literal[
    "invalid",  # 400 / 405 / 422: the request is wrong; fix it
    "forbidden",  # 403
    "not_found",  # 404
    "conflict",  # 409: compare-and-set lost, or the id exists (see current_version)
    "too_large",  # 413
    "busy",  # 429: try again (Retry-After)
    "app_failed",  # 502 / 504: an MCP app failed or timed out
    "unavailable",  # 503: Kafka or every stream worker is away; retry (Retry-After)
]


class FieldError(Frozen):
    """One problem with one field of a request."""

    loc: list[str | int] = Field(description="where: body, query, path or header, then the field")
    msg: str
    type: str


class ErrorBody(Frozen):
    """What every 4xx and 5xx answer holds."""

    detail: str = Field(description="what went wrong, in one sentence")
    code: ErrorCode
    current_version: int | None = Field(
        default=None, description="409 on compare-and-set: the version now"
    )
    errors: list[FieldError] | None = Field(
        default=None, description="422 on a malformed request: each field's problem"
    )
