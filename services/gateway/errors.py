"""How service errors become HTTP answers: one clear message, the right status (the
services' refusals by the table in :mod:`services.refusals`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from schemas.errors import ErrorBody, ErrorCode
from services.refusals import REFUSALS, refusal

CODE_OF_STATUS: dict[int, ErrorCode] = {
    400: "invalid",
    401: "forbidden",
    403: "forbidden",
    404: "not_found",
    405: "invalid",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "busy",
    502: "app_failed",
    504: "app_failed",
}


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# What each kind of route may answer besides its success (docs: the OpenAPI document).
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _error("the caller may not read this"),
    404: _error("no such thing"),
    422: _error("a malformed request; `errors` says which field"),
    503: _error("Kafka or the stream workers are away; retry after `Retry-After`"),
}
COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    403: _error("refused: not allowed (the rejection's reason)"),
    409: _error("a conflict: the id exists, a compare-and-set lost (`current_version`)"),
    413: _error("the request body is larger than a command may be (docs/protocol.md)"),
    422: _error("a malformed request or one the deciders refuse as invalid"),
    503: _error(
        "published but not decided in time, or not published (Kafka away): retry with the "
        "same Idempotency-Key"
    ),
}
APP_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMAND_ERRORS,
    429: _error("too many open sessions with apps; retry after `Retry-After`"),
    502: _error("the app failed"),
    504: _error("the app did not answer in time"),
}


def body(detail: str, code: ErrorCode, **extra: Any) -> dict[str, Any]:
    return ErrorBody(detail=detail, code=code, **extra).model_dump(mode="json", exclude_none=True)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": list(err.get("loc", ())), "msg": str(err.get("msg")), "type": err["type"]}
            for err in exc.errors()[:20]
        ]
        detail = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
            for problem in problems[:5]
        )
        return JSONResponse(body(detail, "invalid", errors=problems), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = CODE_OF_STATUS.get(exc.status_code, "invalid")
        return JSONResponse(
            body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
        )

    async def _refused(_: Request, exc: Exception) -> JSONResponse:
        refused = refusal(exc)
        headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after else None
        return JSONResponse(
            body(refused.detail, refused.code, current_version=refused.current_version),
            status_code=refused.status,
            headers=headers,
        )

    for refusal_type in REFUSALS:
        app.add_exception_handler(refusal_type, _refused)
