"""Kafka topics, the agents (through a gateway), the event log (from Kafka) and the protocol's
JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kolony.cli.common import (
    as_json,
    gateway_get,
    gateway_get_every,
    gateway_url,
    load_settings,
    quiet_kafka,
    run_main,
)


@click.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
def topics_create() -> None:
    """Create Kolony's topics (partitions, replication, cleanup policy from settings)."""
    from kolony.kafka import desired_topics, ensure_topics

    settings = load_settings()
    run_main(lambda: ensure_topics(settings))
    for topic in desired_topics(settings):
        click.echo(f"{topic.name}  partitions={topic.num_partitions}")


@click.group()
def agents() -> None:
    """Registered agents (through the gateway)."""


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
    body = gateway_get_every(url, "/agents", params, "agents")
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
    click.echo(json.dumps(gateway_get(url, f"/agents/{agent_id}"), indent=2))


@click.group()
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

    quiet_kafka()
    settings = load_settings()
    run_main(
        lambda: tail(
            settings,
            lines=None if from_beginning else lines,
            follow=follow,
            type_prefix=type_prefix,
            as_json=as_json,
            echo=click.echo,
        )
    )


@click.group()
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


COMMANDS = (topics, agents, events, schemas)
