"""How service errors become HTTP answers: one clear message, the right status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.hub import HubUnavailable, Rejected
from services.registry import UnknownAgent
from services.tasks import UnknownTask

REJECTION_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Rejected)
    async def _rejected(_: Request, exc: Rejected) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.reason, "code": exc.code}, status_code=REJECTION_STATUS[exc.code]
        )

    @app.exception_handler(UnknownAgent)
    @app.exception_handler(UnknownTask)
    async def _unknown(_: Request, exc: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": "not_found"}, status_code=404)

    @app.exception_handler(HubUnavailable)
    async def _unavailable(_: Request, exc: HubUnavailable) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "code": "unavailable"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
