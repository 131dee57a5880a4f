"""How service errors become HTTP answers: one clear message, the right status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.apps import UnknownApp, UnknownTool
from services.hub import CommandInvalid, HubUnavailable, Rejected
from services.memory import ReadRefused, UnknownKey
from services.messages import UnknownMessage
from services.proxy import AppCallError, AppTimedOut, TooManySessions
from services.registry import UnknownAgent
from services.tasks import UnknownTask

REJECTION_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Rejected)
    async def _rejected(_: Request, exc: Rejected) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=REJECTION_STATUS[exc.code])

    @app.exception_handler(CommandInvalid)
    async def _invalid(_: Request, exc: CommandInvalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": "invalid"}, status_code=422)

    @app.exception_handler(ReadRefused)
    async def _refused(_: Request, exc: ReadRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": "forbidden"}, status_code=403)

    @app.exception_handler(UnknownAgent)
    @app.exception_handler(UnknownTask)
    @app.exception_handler(UnknownMessage)
    @app.exception_handler(UnknownKey)
    @app.exception_handler(UnknownApp)
    @app.exception_handler(UnknownTool)
    async def _unknown(_: Request, exc: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": "not_found"}, status_code=404)

    @app.exception_handler(AppCallError)
    async def _app_failed(_: Request, exc: AppCallError) -> JSONResponse:
        status = 504 if isinstance(exc, AppTimedOut) else 502
        return JSONResponse({"detail": str(exc), "code": "app_failed"}, status_code=status)

    @app.exception_handler(TooManySessions)
    async def _busy(_: Request, exc: TooManySessions) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "code": "busy"}, status_code=429, headers={"Retry-After": "1"}
        )

    @app.exception_handler(HubUnavailable)
    async def _unavailable(_: Request, exc: HubUnavailable) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "code": "unavailable"},
            status_code=503,
            headers={"Retry-After": "1"},
        )


def error_body(exc: Rejected) -> dict[str, object]:
    body: dict[str, object] = {"detail": exc.reason, "code": exc.code}
    if exc.current_version is not None:
        body["current_version"] = exc.current_version
    return body
