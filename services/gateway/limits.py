"""The door: request bodies past the command limits are refused before anything parses them.

A body larger than a command may be gets 413; JSON nested deeper than the limit gets 422
(FastAPI's parser would recurse into it). Both answer ``{"detail": …, "code": …}`` like
every other refusal. MCP requests are answered before this (their tool errors come from
the same limits, checked when a command is encoded).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.limits import MAX_COMMAND_BYTES, MAX_DOCUMENT_DEPTH, json_depth

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodyLimits:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_COMMAND_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                detail = f"the request body is larger than the limit of {self.max_bytes} bytes"
                await _refuse(send, 413, detail, "too_large")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_depth(body, MAX_DOCUMENT_DEPTH) > MAX_DOCUMENT_DEPTH:
            limit = MAX_DOCUMENT_DEPTH
            detail = f"the request body is nested deeper than the limit of {limit} levels"
            await _refuse(send, 422, detail, "invalid")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(send: Send, status: int, detail: str, code: str) -> None:
    body: dict[str, Any] = {"detail": detail, "code": code}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
