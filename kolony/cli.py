"""The ``kolony`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
from pydantic import ValidationError

import kolony
from kolony.settings import Settings

logger = logging.getLogger("kolony")


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.ClickException(
            f"bad setting {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None


def _logging(level: str) -> None:
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


def _quiet_kafka() -> None:
    """For commands that read Kafka once: no broker is one line of ours, not aiokafka's."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _run(main: Callable[[], Any]) -> None:
    """Run a coroutine factory; turn known failures into one clear line."""
    from kolony.broker import BrokerError, JarsUnavailable
    from kolony.kafka import BrokerUnavailable
    from kolony.runtime import GatewayFailed, WorkerCrashed

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


@click.group()
@click.version_option(kolony.__version__, prog_name="kolony")
def main() -> None:
    """Kolony: a Kafka-native control plane for AI agent networks."""


@main.command()
@click.option("--host", envvar="KOLONY_HOST", default=None, help="gateway host [127.0.0.1]")
@click.option("--port", envvar="KOLONY_PORT", type=int, default=None, help="gateway port [8000]")
@click.option(
    "--bootstrap-servers",
    envvar="KOLONY_BOOTSTRAP_SERVERS",
    default=None,
    help="Kafka to use; unset runs the embedded one",
)
@click.option(
    "--fresh", is_flag=True, help="delete the data directory first (every event, a new hub)"
)
@log_level
def up(
    host: str | None, port: int | None, bootstrap_servers: str | None, fresh: bool, log_level: str
) -> None:
    """Start the hub: Kafka (embedded unless configured), stream worker and gateway."""
    from kolony.broker import BrokerError, JarsUnavailable
    from kolony.cli_up import LocalHub
    from kolony.runtime import run

    _logging(log_level)
    hub = LocalHub(
        _settings(host=host, port=port, bootstrap_servers=bootstrap_servers), fresh=fresh
    )
    try:
        try:
            settings = hub.prepare()
        except (BrokerError, JarsUnavailable) as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.Abort from None
        _run(lambda: run(settings, on_ready=hub.ready, exit_if_stuck=True))
    finally:
        hub.close()
    click.echo("Kolony stopped.", err=True)


@main.command()
@click.option("--yes", is_flag=True, help="do not ask")
def reset(yes: bool) -> None:
    """Delete the data directory: the embedded Kafka's log (every agent, task, message,
    memory key and app) and the worker's state."""
    from kolony.cli_up import reset_data

    reset_data(_settings(), ask=not yes)


@main.command()
@log_level
def worker(log_level: str) -> None:
    """Run a stream worker (scale out by running more, on the same topics)."""
    from kolony.runtime import run

    _logging(log_level)
    settings = _settings()
    _run(lambda: run(settings, worker=True, gateway=False, exit_if_stuck=True))


@main.command()
@click.option("--host", envvar="KOLONY_HOST", default=None)
@click.option("--port", envvar="KOLONY_PORT", type=int, default=None)
@log_level
def gateway(host: str | None, port: int | None, log_level: str) -> None:
    """Run a gateway (REST + SSE); several may run side by side."""
    from kolony.runtime import run

    _logging(log_level)
    settings = _settings(host=host, port=port)
    _run(lambda: run(settings, worker=False, gateway=True, exit_if_stuck=True))


@main.command("mcp")
@click.option(
    "--agent-id",
    envvar="KOLONY_AGENT_ID",
    default=None,
    help="the agent the tools act for when a call does not name one",
)
@click.option(
    "--log-level",
    envvar="KOLONY_LOG_LEVEL",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def mcp_stdio(agent_id: str | None, log_level: str) -> None:
    """Serve the hub's MCP tools over stdio, for assistants such as Claude Code.

    It reads the hub's log from Kafka (KOLONY_BOOTSTRAP_SERVERS, else the embedded broker
    of a `kolony up` on this machine) and publishes commands like the gateway does.
    Logs go to stderr; stdout carries MCP only.
    """
    from services.hub import Hub, HubUnavailable
    from services.mcp_tools import build_server

    _logging(log_level)
    settings = _settings()

    async def serve() -> None:
        hub = Hub(settings)
        try:
            await hub.start()
        except HubUnavailable as exc:
            raise click.ClickException(f"{exc} (is `kolony up` running?)") from None
        try:
            await build_server(hub, agent_id=agent_id).run_stdio_async()
        finally:
            await hub.stop()

    _run(serve)


@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
def topics_create() -> None:
    """Create Kolony's topics (partitions, replication, cleanup policy from settings)."""
    from kolony.kafka import desired_topics, ensure_topics

    settings = _settings()
    _run(lambda: ensure_topics(settings))
    for topic in desired_topics(settings):
        click.echo(f"{topic.name}  partitions={topic.num_partitions}")


@main.group()
def agents() -> None:
    """Registered agents (through the gateway)."""


gateway_url = click.option(
    "--url",
    envvar="KOLONY_URL",
    default=None,
    help="the gateway [what `kolony up` serves here, else http://127.0.0.1:8000]",
)
as_json = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


def _request(
    method: str,
    url: str | None,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> Any:
    """One gateway request; any failure becomes one clear line."""
    from kolony.addresses import gateway_url

    url = gateway_url(_settings(), url)
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


def _get(url: str | None, path: str, params: dict[str, Any] | None = None) -> Any:
    return _request("GET", url, path, params=params)


def _get_every(url: str | None, path: str, params: dict[str, Any], items: str) -> Any:
    """A paged list, every page of it: the last page's body with ``items`` of them all."""
    body = _get(url, path, {**params, "page_size": 1_000})
    gathered = body[items]
    while token := body.pop("next_page_token", None):
        body = _get(url, path, {**params, "page_size": 1_000, "page_token": token})
        gathered += body[items]
    body.pop("next_page_token", None)
    return {**body, items: gathered}


@agents.command("list")
@gateway_url
@as_json
@click.option("--capability", help="skill id, name or tag")
@click.option("--status", type=click.Choice(["online", "busy", "error", "offline"]))
@click.option("--q", "text", help="text in name, description or skills")
def agents_list(
    url: str | None, as_json: bool, capability: str | None, status: str | None, text: str | None
) -> None:
    """List agents."""
    params = {k: v for k, v in {"capability": capability, "status": status, "q": text}.items() if v}
    body = _get_every(url, "/agents", params, "agents")
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    rows = body["agents"]
    if not rows:
        click.echo("no agents")
        return
    click.echo(f"{'AGENT ID':36}  {'STATUS':8}  {'LAST SEEN':20}  NAME / SKILLS")
    for agent in rows:
        skills = ", ".join(s["id"] for s in agent["card"].get("skills", []))
        seen = agent["last_seen_at"][:19].replace("T", " ")
        click.echo(
            f"{agent['agent_id']:36}  {agent['status']:8}  {seen:20}  "
            f"{agent['card']['name']} {agent['card']['version']}"
            + (f"  [{skills}]" if skills else "")
        )
    click.echo(f"{body['total']} agent(s)")


@agents.command("show")
@gateway_url
@click.argument("agent_id")
def agents_show(url: str | None, agent_id: str) -> None:
    """Show one agent as JSON."""
    click.echo(json.dumps(_get(url, f"/agents/{agent_id}"), indent=2))


@main.group()
def events() -> None:
    """The event log (read from Kafka directly)."""


@events.command("tail")
@click.option(
    "-n", "--lines", default=20, show_default=True, help="events to show from each partition's end"
)
@click.option("--follow", "-f", is_flag=True, help="keep printing new events")
@click.option("--from-beginning", is_flag=True, help="the whole log")
@click.option("--type", "type_prefix", help="only events whose type starts with this")
@as_json
def events_tail(
    lines: int, follow: bool, from_beginning: bool, type_prefix: str | None, as_json: bool
) -> None:
    """Print the last events of the agents' event log."""
    from kolony.tail import tail

    _quiet_kafka()
    settings = _settings()
    _run(
        lambda: tail(
            settings,
            lines=None if from_beginning else lines,
            follow=follow,
            type_prefix=type_prefix,
            as_json=as_json,
            echo=click.echo,
        )
    )


@main.group()
def schemas() -> None:
    """The protocol's JSON Schemas."""


@schemas.command("export")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("docs/schemas"), show_default=True
)
def schemas_export(out: Path) -> None:
    """Write a JSON Schema file per command, event and record type."""
    from schemas.export import export

    for path in export(out):
        click.echo(str(path))


# The records commands (tasks, messages, memory, send, delegate, replay) live in their own
# module and attach themselves to ``main``.
import kolony.cli_records  # noqa: E402, F401
