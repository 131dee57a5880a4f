"""One table of refusals (services/refusals.py), answered alike by REST, the WebSocket and MCP."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mcp.server.mcpserver.exceptions import ToolError

import services
from schemas.base import CommandRejected
from services.gateway.errors import install_error_handlers
from services.hub import HubUnavailable, Rejected
from services.mcp.common import _reported
from services.proxy import AppCallError, AppTimedOut, TooManySessions
from services.refusals import KINDS, REFUSALS, refusal
from services.usecases.apps import UnknownApp
from services.usecases.tasks import UnknownTask


def _service_exceptions() -> list[type[BaseException]]:
    found = []
    for module in pkgutil.walk_packages(services.__path__, "services."):
        loaded = importlib.import_module(module.name)
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.name:
                found.append(cls)
    return found


def test_every_exception_the_services_define_is_in_the_table() -> None:
    """A new refusal must say how each protocol answers it, here, not in three adapters."""
    exceptions = _service_exceptions()
    assert UnknownTask in exceptions and Rejected in exceptions  # the scan sees them
    missing = [cls.__name__ for cls in exceptions if cls is not Rejected and cls not in KINDS]
    assert missing == []


def rejected(code: str = "conflict") -> Rejected:
    event = CommandRejected(
        event_id="e1",
        occurred_at=datetime.now(UTC),
        code=code,  # type: ignore[arg-type]
        reason="the version moved on",
        current_version=7,
    )
    return Rejected(event)


CASES: list[tuple[Exception, str, int, str | None]] = [
    (rejected(), "conflict", 409, None),
    (rejected("forbidden"), "forbidden", 403, None),
    (UnknownTask("no task 't1'"), "not_found", 404, None),
    (UnknownApp("no app 'a1'"), "not_found", 404, None),
    (AppTimedOut("the app did not answer within 30 s"), "app_failed", 504, None),
    (AppCallError("the app refused the connection"), "app_failed", 502, None),
    (TooManySessions("every session is busy"), "busy", 429, "1"),
    (HubUnavailable("Kafka is away"), "unavailable", 503, "1"),
    (ValueError("give exactly one of capability or agent_id"), "invalid", 422, None),
]


@pytest.mark.parametrize(("exc", "code", "status", "retry_after"), CASES)
def test_rest_answers_a_refusal_by_the_table(
    exc: Exception, code: str, status: int, retry_after: str | None
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refuse")
    async def refuse() -> None:
        raise exc

    answer = TestClient(app).get("/refuse")
    assert answer.status_code == status
    assert answer.json()["code"] == code
    assert answer.json()["detail"] == refusal(exc).detail
    assert answer.headers.get("Retry-After") == retry_after
    if isinstance(exc, Rejected):
        assert answer.json()["current_version"] == 7


@pytest.mark.parametrize(("exc", "code", "status", "retry_after"), CASES)
async def test_mcp_answers_a_refusal_by_the_table(
    exc: Exception, code: str, status: int, retry_after: str | None
) -> None:
    async def tool() -> None:
        raise exc

    with pytest.raises(ToolError) as raised:
        await _reported(tool)()
    assert str(raised.value) == f"{code}: {refusal(exc).detail}"


def test_a_subclass_is_answered_as_its_nearest_kind_and_a_bug_is_no_refusal() -> None:
    class StillAway(HubUnavailable):
        pass

    assert refusal(StillAway("x")).code == "unavailable"
    assert not issubclass(KeyError, REFUSALS)  # a bug's KeyError is not "not found"
    with pytest.raises(TypeError):
        refusal(KeyError("x"))
