"""``BusClient``: an agent's registration with a Kolony gateway, renewed while it lives.

Registering is ``POST /agents`` with the card; the same card name and version always give
the same ``agent_id``, and posting it again renews the registration (a heartbeat). The
client renews every third of the registration's TTL, so one lost renewal never makes the
agent look offline; a failed renewal is retried with exponential backoff and jitter until
the gateway answers again (a gateway or hub that restarted simply sees a registration).
Leaving the ``with`` block deregisters the agent (``DELETE /agents/{id}``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import TracebackType
from typing import Any

import httpx

from kolony.sdk.backoff import backoff
from kolony.sdk.errors import BusError
from schemas.a2a import AgentCard
from schemas.registry import RegisteredAgent

logger = logging.getLogger(__name__)


class BusClient:
    """Registers ``agent_card`` at the gateway at ``url`` and keeps it registered.

    Use it as a context manager, plain (``with``) or async (``async with``); or call
    :meth:`register` / :meth:`unregister` (and :meth:`renew`) yourself.
    """

    def __init__(
        self,
        url: str,
        agent_card: AgentCard | dict[str, Any],
        *,
        ttl_seconds: float | None = None,
        renew_interval: float | None = None,
        register_timeout: float = 30.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.agent_card = (
            agent_card
            if isinstance(agent_card, AgentCard)
            else AgentCard.model_validate(agent_card)
        )
        self.ttl_seconds = ttl_seconds
        self.renew_interval = renew_interval
        self.register_timeout = register_timeout
        self.request_timeout = request_timeout
        self.registered: RegisteredAgent | None = None
        self.renewals = 0  # successful renewals since registering
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    # what Thronglets' client offers

    @property
    def agent_id(self) -> str:
        if self.registered is None:
            raise BusError("not registered: use the client as a context manager or register()")
        return self.registered.agent_id

    @property
    def mcp_address(self) -> str:
        """Where the agent's MCP client connects (Thronglets' address); the query names the
        agent, so the hub's tools act for it (``agent__whoami``, ``message__receive``…)."""
        if self.registered is None:
            return f"{self.url}/bus/mcp"
        return f"{self.url}/bus/mcp?agent_id={self.registered.agent_id}"

    def interval(self) -> float:
        """Seconds between renewals: the given interval, or a third of the TTL."""
        if self.renew_interval is not None:
            return self.renew_interval
        ttl = self.registered.ttl_seconds if self.registered else self.ttl_seconds or 60.0
        return max(0.5, ttl / 3)

    # the requests

    def _params(self) -> dict[str, float]:
        return {"ttl": self.ttl_seconds} if self.ttl_seconds is not None else {}

    def _card(self) -> dict[str, Any]:
        return self.agent_card.model_dump(mode="json", exclude_none=True)

    def _accept(self, response: httpx.Response) -> RegisteredAgent:
        if response.status_code not in (200, 201):  # 201 registered, 200 renewed
            raise BusError(f"POST /agents: {response.status_code} {_detail(response)}")
        self.registered = RegisteredAgent.model_validate(response.json())
        return self.registered

    # plain

    def register(self) -> RegisteredAgent:
        """Register (or renew); retries unreachable gateways for ``register_timeout`` seconds.
        A refusal (4xx) is raised at once: retrying would not change it."""
        deadline = time.monotonic() + self.register_timeout
        attempt = 0
        with self._client() as client:
            while True:
                try:
                    return self._post(client)
                except (httpx.HTTPError, _Retryable) as exc:
                    attempt += 1
                    pause = backoff(attempt, cap=self.interval())
                    if time.monotonic() + pause > deadline:
                        raise BusError(f"cannot register at {self.url}: {exc}") from exc
                    time.sleep(pause)

    def renew(self) -> RegisteredAgent:
        """One renewal, now."""
        with self._client() as client:
            registered = self._post(client)
        self.renewals += 1
        return registered

    def unregister(self) -> None:
        """Deregister; the agent's id stays known to the hub as deregistered."""
        self._stop_renewing()
        if self.registered is None:
            return
        try:
            with self._client() as client:
                client.delete(f"/agents/{self.registered.agent_id}")
        except httpx.HTTPError as exc:
            logger.warning("could not deregister %s: %s", self.registered.agent_id, exc)

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=self.request_timeout)

    def _post(self, client: httpx.Client) -> RegisteredAgent:
        response = client.post("/agents", json=self._card(), params=self._params())
        if response.status_code >= 500:
            raise _Retryable(f"{response.status_code} {_detail(response)}")
        return self._accept(response)

    def _next_wait(self, failures: int) -> float:
        """The renewal interval; after failures, a backoff that never exceeds it."""
        if failures == 0:
            return self.interval()
        return backoff(failures, cap=self.interval())

    def _renewal_failed(self, failures: int, exc: Exception) -> None:
        logger.warning("renewal %d failed (%s); retrying with backoff", failures, exc)

    def _renew_forever(self) -> None:
        failures = 0
        with self._client() as client:
            while not self._stop.wait(self._next_wait(failures)):
                try:
                    self._post(client)
                except (httpx.HTTPError, _Retryable, BusError) as exc:
                    failures += 1
                    self._renewal_failed(failures, exc)
                else:
                    self.renewals += 1
                    failures = 0

    def _stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.request_timeout + 1)
        self._thread = None

    def __enter__(self) -> BusClient:
        self.register()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._renew_forever, name=f"kolony-renew-{self.agent_id}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.unregister()

    # async

    async def aregister(self) -> RegisteredAgent:
        """:meth:`register`, without blocking the event loop."""
        deadline = time.monotonic() + self.register_timeout
        attempt = 0
        async with self._aclient() as client:
            while True:
                try:
                    return await self._apost(client)
                except (httpx.HTTPError, _Retryable) as exc:
                    attempt += 1
                    pause = backoff(attempt, cap=self.interval())
                    if time.monotonic() + pause > deadline:
                        raise BusError(f"cannot register at {self.url}: {exc}") from exc
                    await asyncio.sleep(pause)

    async def arenew(self) -> RegisteredAgent:
        async with self._aclient() as client:
            registered = await self._apost(client)
        self.renewals += 1
        return registered

    async def aunregister(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.registered is None:
            return
        try:
            async with self._aclient() as client:
                await client.delete(f"/agents/{self.registered.agent_id}")
        except httpx.HTTPError as exc:
            logger.warning("could not deregister %s: %s", self.registered.agent_id, exc)

    def _aclient(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=self.request_timeout)

    async def _apost(self, client: httpx.AsyncClient) -> RegisteredAgent:
        response = await client.post("/agents", json=self._card(), params=self._params())
        if response.status_code >= 500:
            raise _Retryable(f"{response.status_code} {_detail(response)}")
        return self._accept(response)

    async def _arenew_forever(self) -> None:
        failures = 0
        async with self._aclient() as client:
            while True:
                await asyncio.sleep(self._next_wait(failures))
                try:
                    await self._apost(client)
                except (httpx.HTTPError, _Retryable, BusError) as exc:
                    failures += 1
                    self._renewal_failed(failures, exc)
                else:
                    self.renewals += 1
                    failures = 0

    async def __aenter__(self) -> BusClient:
        await self.aregister()
        self._task = asyncio.create_task(
            self._arenew_forever(), name=f"kolony-renew-{self.agent_id}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aunregister()


class _Retryable(Exception):
    """The gateway answered 5xx: worth another try."""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]
