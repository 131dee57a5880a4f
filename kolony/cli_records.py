"""``kolony tasks|messages|memory``, ``kolony send``, ``kolony delegate``, ``kolony replay``.

Everything but ``replay`` goes through the gateway (``--url`` / ``KOLONY_URL``); ``replay``
reads the event log from Kafka (``KOLONY_BOOTSTRAP_SERVERS``). Human output by default,
``--json`` for scripts, one line on stderr for any error.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from core.tasks import is_terminal
from kolony.cli import (
    _get,
    _get_every,
    _quiet_kafka,
    _request,
    _run,
    _settings,
    as_json,
    gateway_url,
    main,
)
from schemas.a2a import TaskState

_MOMENT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _finished(state: str) -> bool:
    return is_terminal(TaskState(state))


def _dump(body: Any) -> None:
    click.echo(json.dumps(body, indent=2))


def _short(value: str | None, width: int = 8) -> str:
    return (value or "-")[:width]


def _when(stamp: str | None) -> str:
    return stamp[:19].replace("T", " ") if stamp else "-"


def _text(message: dict[str, Any] | None) -> str:
    if not message:
        return ""
    return " ".join(p["text"] for p in message.get("parts", []) if p.get("text"))


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _params(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v not in (None, (), [])}


# tasks


@main.group()
def tasks() -> None:
    """Tasks (through the gateway)."""


@tasks.command("list")
@gateway_url
@as_json
@click.option("--state", "states", multiple=True, help="only these states (repeatable)")
@click.option("--assignee", help="agent id")
@click.option("--requester", help="agent id")
@click.option("--capability")
@click.option("--open", "only_open", is_flag=True, help="only tasks not finished")
@click.option("--overdue", is_flag=True, help="only open tasks past their due time")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1_000))
def tasks_list(
    url: str | None,
    as_json: bool,
    states: tuple[str, ...],
    assignee: str | None,
    requester: str | None,
    capability: str | None,
    only_open: bool,
    overdue: bool,
    limit: int,
) -> None:
    """List tasks, newest first."""
    params = _params(
        status=list(states),
        assignee=assignee,
        requester=requester,
        capability=capability,
        open=only_open or None,
        overdue=overdue or None,
        page_size=limit,
        history_length=0,
    )
    body = _get(url, "/tasks", params)
    if as_json:
        _dump(body)
        return
    rows = body["tasks"]
    if not rows:
        click.echo("no tasks")
        return
    click.echo(f"{'TASK ID':36}  {'STATE':14}  {'ASSIGNEE':8}  {'CREATED':19}  CAPABILITY / TITLE")
    for task in rows:
        what = " / ".join(x for x in (task.get("capability"), task.get("title")) if x)
        click.echo(
            f"{task['id']:36}  {task['status']['state']:14}  {_short(task.get('assignee_id'))}  "
            f"{_when(task.get('created_at')):19}  {what}"
        )
    click.echo(f"{len(rows)} of {body['total_size']} task(s)")


@tasks.command("show")
@gateway_url
@as_json
@click.argument("task_id")
def tasks_show(url: str | None, as_json: bool, task_id: str) -> None:
    """One task: its state, parties, result and history."""
    task = _get(url, f"/tasks/{task_id}")
    if as_json:
        _dump(task)
        return
    status = task["status"]
    lines = [
        f"task       {task['id']}",
        f"state      {status['state']}" + (f"  ({task['reason']})" if task.get("reason") else ""),
        f"title      {task.get('title') or '-'}",
        f"capability {task.get('capability') or '-'}",
        f"requester  {task.get('requester_id') or '-'}",
        f"assignee   {task.get('assignee_id') or '-'}",
        f"created    {_when(task.get('created_at'))}   updated {_when(task.get('updated_at'))}",
    ]
    if task.get("input") is not None:
        lines.append(f"input      {json.dumps(task['input'])}")
    if task.get("result") is not None:
        lines.append(f"result     {json.dumps(task['result'])}")
    for message in task.get("history", []):
        lines.append(f"  {message.get('role', '?'):6} {_text(message)}")
    click.echo("\n".join(lines))


# messages


@main.group()
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
    params = _params(
        sender_id=sender,
        recipient_id=recipient,
        task_id=task_id,
        since=_moment(since).isoformat() if since else None,
        type=message_type,
        page_size=limit,
    )
    body = _get(url, "/messages", params)
    if as_json:
        _dump(body)
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
            else ",".join(_short(r) for r in view.get("recipients", [])[:2])
        )
        click.echo(
            f"{_when(record['sent_at']):19}  {_short(record['sender_id'])}  {_clip(to, 17):17}  "
            f"{record['message_type']:6}  {_clip(_text(record['message']), 60)}"
        )
    click.echo(f"{len(rows)} of {body['total_size']} message(s)")


@messages.command("show")
@gateway_url
@click.argument("message_id")
def messages_show(url: str | None, message_id: str) -> None:
    """One message as JSON (with its recipients and who read it)."""
    _dump(_get(url, f"/messages/{message_id}"))


@main.command()
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
    view = _request("POST", url, "/messages", body={k: v for k, v in body.items() if v})
    if as_json:
        _dump(view)
        return
    record = view["record"]
    click.echo(f"sent {record['message_id']} to {record['recipient_count']} agent(s)")


# memory


@main.group()
def memory() -> None:
    """Shared memory (through the gateway)."""


@memory.command("list")
@gateway_url
@as_json
@click.option("--prefix", default="", help="only keys starting with this")
@click.option("--as", "agent_id", help="only what this agent may read")
def memory_list(url: str | None, as_json: bool, prefix: str, agent_id: str | None) -> None:
    """List keys with their versions and values."""
    body = _get_every(url, "/memory", _params(prefix=prefix or None, agent_id=agent_id), "items")
    if as_json:
        _dump(body)
        return
    items = body["items"]
    if not items:
        click.echo("no keys")
        return
    click.echo(f"{'KEY':32}  {'VERSION':>7}  {'UPDATED BY':10}  VALUE")
    for item in items:
        click.echo(
            f"{_clip(item['key'], 32):32}  {item['version']:>7}  "
            f"{_short(item.get('updated_by'), 10):10}  {_clip(json.dumps(item['value']), 60)}"
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
    _dump(_get(url, path, _params(agent_id=agent_id)))


# delegation


@main.command()
@gateway_url
@as_json
@click.option("--capability", help="whoever can do this")
@click.option("--to", "assignee", help="this agent")
@click.option("--input", "input_json", help="the task's input, as JSON")
@click.option("--title")
@click.option("--from", "requester", help="the requesting agent's id")
@click.option("--wait/--no-wait", default=True, show_default=True, help="wait for the result")
@click.option("--timeout", default=300.0, show_default=True, help="seconds to wait")
def delegate(
    url: str | None,
    as_json: bool,
    capability: str | None,
    assignee: str | None,
    input_json: str | None,
    title: str | None,
    requester: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Create a task for a capability or an agent, and wait for its result."""
    if (capability is None) == (assignee is None):
        raise click.UsageError("give --capability or --to (one of them)")
    try:
        task_input = json.loads(input_json) if input_json is not None else None
    except ValueError as exc:
        raise click.UsageError(f"--input is not JSON: {exc}") from None
    body = _params(
        capability=capability,
        assignee_id=assignee,
        requester_id=requester,
        title=title,
        input=task_input,
    )
    task = _request("POST", url, "/tasks", body=body)
    click.echo(f"task {task['id']} {task['status']['state']}", err=True)
    if wait:
        task = _await_task(url, task, timeout)
    if as_json:
        _dump(task)
        return
    state = task["status"]["state"]
    if state == "completed":
        result = task.get("result")
        click.echo(json.dumps(result) if not isinstance(result, str) else result)
    elif _finished(state):
        raise click.ClickException(f"task {task['id']} {state}: {task.get('reason') or '-'}")
    else:
        click.echo(task["id"])


def _await_task(url: str | None, task: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll the task until it is finished, printing each change of state to stderr."""
    deadline = time.monotonic() + timeout
    seen = task["status"]["state"]
    while not _finished(seen):
        if time.monotonic() > deadline:
            raise click.ClickException(f"task {task['id']} still {seen} after {timeout:g} s")
        time.sleep(0.2)
        task = _get(url, f"/tasks/{task['id']}", {"history_length": 1})
        state = task["status"]["state"]
        if state != seen:
            note = _text(task["status"].get("message"))
            who = f" ({_short(task.get('assignee_id'))})" if task.get("assignee_id") else ""
            click.echo(f"  {state}{who}" + (f": {note}" if note else ""), err=True)
            seen = state
    return task


# replay


def _moment(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC; ``now`` is now."""
    if text == "now":
        return datetime.now(UTC)
    try:
        return _MOMENT.validate_python(text)
    except ValidationError:
        try:
            naive = datetime.fromisoformat(text)
        except ValueError:
            raise click.BadParameter(f"not an ISO 8601 time: {text!r}") from None
        return naive.replace(tzinfo=UTC) if naive.tzinfo is None else naive


@main.command()
@as_json
@click.option("--until", "until_text", required=True, help="ISO 8601 time (UTC if no zone)")
def replay(as_json: bool, until_text: str) -> None:
    """The agents and tasks as they were at a moment, rebuilt from the event log."""
    from kolony.replay import Snapshot
    from kolony.replay import replay as rebuild

    until = _moment(until_text)
    _quiet_kafka()
    settings = _settings()
    result: list[Snapshot] = []

    def progress(total: int) -> None:
        click.echo(f"reading {total:,} events ...", err=True)

    async def go() -> None:
        result.append(await rebuild(settings, until, progress))

    _run(go)
    if not result:
        sys.exit(1)  # interrupted
    snapshot = result[0]
    if as_json:
        _dump(
            {
                "at": snapshot.at.isoformat(),
                "agents": [a.model_dump(mode="json", exclude_none=True) for a in snapshot.agents],
                "tasks": [t.model_dump(mode="json", exclude_none=True) for t in snapshot.tasks],
                "events_applied": snapshot.applied,
                "events_later": snapshot.later,
            }
        )
        return
    click.echo(
        f"as of {snapshot.at.isoformat(timespec='seconds')}: {len(snapshot.agents)} agent(s), "
        f"{len(snapshot.tasks)} task(s) ({snapshot.applied:,} events; "
        f"{snapshot.later:,} later ones left out)"
    )
    for agent in snapshot.agents:
        click.echo(
            f"  agent {agent.agent_id}  {agent.status.value:8}  "
            f"{agent.card.name} {agent.card.version}"
        )
    for task in snapshot.tasks:
        click.echo(
            f"  task  {task.id}  {task.status.state.value:14}  "
            f"{_short(task.assignee_id)}  {task.capability or task.title or ''}"
        )
