"""``kolony messages|memory`` and ``kolony send``, through the gateway (``--url`` /
``KOLONY_URL``). Human output by default, ``--json`` for scripts, one line on stderr for any
error."""

from __future__ import annotations

import json
from typing import Any

import click

from kolony.cli.common import (
    as_json,
    gateway_get,
    gateway_get_every,
    gateway_request,
    gateway_url,
)
from kolony.cli.show import clip, dump, moment, only_given, short, text_of, when


@click.group()
def messages() -> None:
    """Messages (through the gateway)."""


@messages.command("list")
@gateway_url
@as_json
@click.option("--sender", help="agent id")
@click.option("--recipient", help="agent id")
@click.option("--task", "task_id", help="a task's thread")
@click.option("--since", help="ISO 8601 time")
@click.option("--type", "message_type", type=click.Choice(["text", "system", "error", "info"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1_000))
def messages_list(
    url: str | None,
    as_json: bool,
    sender: str | None,
    recipient: str | None,
    task_id: str | None,
    since: str | None,
    message_type: str | None,
    limit: int,
) -> None:
    """List messages, newest first."""
    params = only_given(
        sender_id=sender,
        recipient_id=recipient,
        task_id=task_id,
        since=moment(since).isoformat() if since else None,
        type=message_type,
        page_size=limit,
    )
    body = gateway_get(url, "/messages", params)
    if as_json:
        dump(body)
        return
    rows = body["messages"]
    if not rows:
        click.echo("no messages")
        return
    click.echo(f"{'SENT':19}  {'FROM':8}  {'TO':17}  {'TYPE':6}  TEXT")
    for view in rows:
        record = view["record"]
        to = record.get("capability") or (
            "everyone"
            if record["delivery"] == "broadcast"
            else ",".join(short(r) for r in view.get("recipients", [])[:2])
        )
        click.echo(
            f"{when(record['sent_at']):19}  {short(record['sender_id'])}  {clip(to, 17):17}  "
            f"{record['message_type']:6}  {clip(text_of(record['message']), 60)}"
        )
    click.echo(f"{len(rows)} of {body['total_size']} message(s)")


@messages.command("show")
@gateway_url
@click.argument("message_id")
def messages_show(url: str | None, message_id: str) -> None:
    """One message as JSON (with its recipients and who read it)."""
    dump(gateway_get(url, f"/messages/{message_id}"))


@click.command()
@gateway_url
@as_json
@click.option("--from", "sender", required=True, help="the sending agent's id")
@click.option("--to", "recipients", multiple=True, help="an agent id (repeatable)")
@click.option("--task", "task_id", help="into this task's thread")
@click.option("--all", "everyone", is_flag=True, help="broadcast to every online agent")
@click.option("--capability", help="broadcast to the agents with this capability")
@click.option(
    "--type", "message_type", default="text", type=click.Choice(["text", "system", "error", "info"])
)
@click.argument("text")
def send(
    url: str | None,
    as_json: bool,
    sender: str,
    recipients: tuple[str, ...],
    task_id: str | None,
    everyone: bool,
    capability: str | None,
    message_type: str,
    text: str,
) -> None:
    """Send TEXT to agents, into a task's thread, or to everyone (--all / --capability)."""
    broadcast = everyone or capability is not None
    if broadcast == bool(recipients or task_id):
        raise click.UsageError("give --to/--task, or --all/--capability (one kind)")
    body: dict[str, Any] = {"from": sender, "content": text, "message_type": message_type}
    if broadcast:
        body.update(broadcast=True, capability=capability)
    else:
        body.update(to=list(recipients), task_id=task_id)
    view = gateway_request("POST", url, "/messages", body={k: v for k, v in body.items() if v})
    if as_json:
        dump(view)
        return
    record = view["record"]
    click.echo(f"sent {record['message_id']} to {record['recipient_count']} agent(s)")


# memory


@click.group()
def memory() -> None:
    """Shared memory (through the gateway)."""


@memory.command("list")
@gateway_url
@as_json
@click.option("--prefix", default="", help="only keys starting with this")
@click.option("--as", "agent_id", help="only what this agent may read")
def memory_list(url: str | None, as_json: bool, prefix: str, agent_id: str | None) -> None:
    """List keys with their versions and values."""
    body = gateway_get_every(
        url, "/memory", only_given(prefix=prefix or None, agent_id=agent_id), "items"
    )
    if as_json:
        dump(body)
        return
    items = body["items"]
    if not items:
        click.echo("no keys")
        return
    click.echo(f"{'KEY':32}  {'VERSION':>7}  {'UPDATED BY':10}  VALUE")
    for item in items:
        click.echo(
            f"{clip(item['key'], 32):32}  {item['version']:>7}  "
            f"{short(item.get('updated_by'), 10):10}  {clip(json.dumps(item['value']), 60)}"
        )
    click.echo(f"{body['total']} key(s)")


@memory.command("show")
@gateway_url
@click.option("--as", "agent_id", help="read as this agent (ACLs apply)")
@click.option("--history", is_flag=True, help="its recent writes and deletions instead")
@click.argument("key")
def memory_show(url: str | None, agent_id: str | None, history: bool, key: str) -> None:
    """One key as JSON: value, version, ACL."""
    path = f"/memory/{key}/history" if history else f"/memory/{key}"
    dump(gateway_get(url, path, only_given(agent_id=agent_id)))


COMMANDS = (messages, send, memory)
