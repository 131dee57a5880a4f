"""What the commands share: settings, logging, running a coroutine with one clear line on a
known failure, and requests to a gateway."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import click
import httpx
from pydantic import ValidationError

from kolony.settings import Settings

logger = logging.getLogger("kolony")


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.ClickException(
            f"bad setting {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level.upper() != "DEBUG":
        for noisy in ("faust", "mode", "aiokafka", "streams.transport", "streams.app"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        for name in (
            "aiokafka",
            "aiokafka.consumer.fetcher",
            "aiokafka.consumer.group_coordinator",
        ):
            logging.getLogger(name).addFilter(_transient)


class _Transient(logging.Filter):
    """aiokafka logs as errors what it retries at once: a partition or the group coordinator
    not ready yet on a cluster that has just made them (a new hub's first seconds). They
    show with --log-level debug; anything that lasts shows in /health and the worker."""

    RETRIED = ("NotLeaderForPartitionError", "GroupCoordinatorNotAvailableError")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in self.RETRIED)


_transient = _Transient()


def quiet_kafka() -> None:
    """For commands that read Kafka once: no broker is one line of ours, not aiokafka's."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def run_main(main: Callable[[], Any]) -> None:
    """Run a coroutine factory; turn known failures into one clear line."""
    from kolony.broker import BrokerError, JarsUnavailable
    from kolony.cli.runtime import GatewayFailed, WorkerCrashed
    from kolony.kafka import BrokerUnavailable

    try:
        asyncio.run(main())
    except (BrokerUnavailable, BrokerError, JarsUnavailable, WorkerCrashed, GatewayFailed) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


log_level = click.option(
    "--log-level",
    envvar="KOLONY_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)


gateway_url = click.option(
    "--url",
    envvar="KOLONY_URL",
    default=None,
    help="the gateway [what `kolony up` serves here, else http://127.0.0.1:8000]",
)
as_json = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


def gateway_request(
    method: str,
    url: str | None,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> Any:
    """One gateway request; any failure becomes one clear line."""
    from kolony.addresses import gateway_url

    url = gateway_url(load_settings(), url)
    try:
        response = httpx.request(method, f"{url}{path}", params=params, json=body, timeout=30)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise click.ClickException(
            f"bad gateway URL {url!r} ({exc}); give one like http://127.0.0.1:8000"
        ) from None
    except httpx.ConnectError:
        raise click.ClickException(
            f"cannot reach the gateway at {url}: is `kolony up` running? "
            "(--url or KOLONY_URL names another hub)"
        ) from None
    except httpx.HTTPError as exc:
        raise click.ClickException(f"the gateway at {url} did not answer: {exc}") from None
    if response.status_code >= 400:
        detail: Any = response.reason_phrase
        if response.content:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text[:300]
        if isinstance(detail, list):  # FastAPI's validation errors
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:]) or 'body'}: {d.get('msg')}"
                for d in detail[:3]
            )
        raise click.ClickException(f"{response.status_code}: {detail}")
    return response.json()


def gateway_get(url: str | None, path: str, params: dict[str, Any] | None = None) -> Any:
    return gateway_request("GET", url, path, params=params)


def gateway_get_every(url: str | None, path: str, params: dict[str, Any], items: str) -> Any:
    """A paged list, every page of it: the last page's body with ``items`` of them all."""
    body = gateway_get(url, path, {**params, "page_size": 1_000})
    gathered = body[items]
    while token := body.pop("next_page_token", None):
        body = gateway_get(url, path, {**params, "page_size": 1_000, "page_token": token})
        gathered += body[items]
    body.pop("next_page_token", None)
    return {**body, items: gathered}
