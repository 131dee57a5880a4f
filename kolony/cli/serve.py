"""The processes: `kolony up` (Kafka, worker and gateway in one), `worker`, `gateway`, the MCP
server on stdio, and `reset`."""

from __future__ import annotations

import click

from kolony.cli.common import load_settings, log_level, run_main, setup_logging


@click.command()
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
    from kolony.cli.local import LocalHub
    from kolony.cli.runtime import run

    setup_logging(log_level)
    hub = LocalHub(
        load_settings(host=host, port=port, bootstrap_servers=bootstrap_servers), fresh=fresh
    )
    try:
        try:
            settings = hub.prepare()
        except (BrokerError, JarsUnavailable) as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.Abort from None
        run_main(lambda: run(settings, on_ready=hub.ready, exit_if_stuck=True))
    finally:
        hub.close()
    click.echo("Kolony stopped.", err=True)


@click.command()
@click.option("--yes", is_flag=True, help="do not ask")
def reset(yes: bool) -> None:
    """Delete the data directory: the embedded Kafka's log (every agent, task, message,
    memory key and app) and the worker's state."""
    from kolony.cli.local import reset_data

    reset_data(load_settings(), ask=not yes)


@click.command()
@log_level
def worker(log_level: str) -> None:
    """Run a stream worker (scale out by running more, on the same topics)."""
    from kolony.cli.runtime import run

    setup_logging(log_level)
    settings = load_settings()
    run_main(lambda: run(settings, worker=True, gateway=False, exit_if_stuck=True))


@click.command()
@click.option("--host", envvar="KOLONY_HOST", default=None)
@click.option("--port", envvar="KOLONY_PORT", type=int, default=None)
@log_level
def gateway(host: str | None, port: int | None, log_level: str) -> None:
    """Run a gateway (REST + SSE); several may run side by side."""
    from kolony.cli.runtime import run

    setup_logging(log_level)
    settings = load_settings(host=host, port=port)
    run_main(lambda: run(settings, worker=False, gateway=True, exit_if_stuck=True))


@click.command("mcp")
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
    from services.mcp import build_server

    setup_logging(log_level)
    settings = load_settings()

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

    run_main(serve)


COMMANDS = (up, reset, worker, gateway, mcp_stdio)
