"""``kolony tasks`` and ``kolony delegate``, through the gateway (``--url`` / ``KOLONY_URL``)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from kolony.cli.common import (
    as_json,
    gateway_get,
    gateway_request,
    gateway_url,
)
from kolony.cli.show import dump, finished, only_given, short, text_of, when


@click.group()
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
    params = only_given(
        status=list(states),
        assignee=assignee,
        requester=requester,
        capability=capability,
        open=only_open or None,
        overdue=overdue or None,
        page_size=limit,
        history_length=0,
    )
    body = gateway_get(url, "/tasks", params)
    if as_json:
        dump(body)
        return
    rows = body["tasks"]
    if not rows:
        click.echo("no tasks")
        return
    click.echo(f"{'TASK ID':36}  {'STATE':14}  {'ASSIGNEE':8}  {'CREATED':19}  CAPABILITY / TITLE")
    for task in rows:
        what = " / ".join(x for x in (task.get("capability"), task.get("title")) if x)
        click.echo(
            f"{task['id']:36}  {task['status']['state']:14}  {short(task.get('assignee_id'))}  "
            f"{when(task.get('created_at')):19}  {what}"
        )
    click.echo(f"{len(rows)} of {body['total_size']} task(s)")


@tasks.command("show")
@gateway_url
@as_json
@click.argument("task_id")
def tasks_show(url: str | None, as_json: bool, task_id: str) -> None:
    """One task: its state, parties, result and history."""
    task = gateway_get(url, f"/tasks/{task_id}")
    if as_json:
        dump(task)
        return
    status = task["status"]
    lines = [
        f"task       {task['id']}",
        f"state      {status['state']}" + (f"  ({task['reason']})" if task.get("reason") else ""),
        f"title      {task.get('title') or '-'}",
        f"capability {task.get('capability') or '-'}",
        f"requester  {task.get('requester_id') or '-'}",
        f"assignee   {task.get('assignee_id') or '-'}",
        f"created    {when(task.get('created_at'))}   updated {when(task.get('updated_at'))}",
    ]
    if task.get("input") is not None:
        lines.append(f"input      {json.dumps(task['input'])}")
    if task.get("result") is not None:
        lines.append(f"result     {json.dumps(task['result'])}")
    for message in task.get("history", []):
        lines.append(f"  {message.get('role', '?'):6} {text_of(message)}")
    click.echo("\n".join(lines))


# delegation


@click.command()
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
    body = only_given(
        capability=capability,
        assignee_id=assignee,
        requester_id=requester,
        title=title,
        input=task_input,
    )
    task = gateway_request("POST", url, "/tasks", body=body)
    click.echo(f"task {task['id']} {task['status']['state']}", err=True)
    if wait:
        task = _await_task(url, task, timeout)
    if as_json:
        dump(task)
        return
    state = task["status"]["state"]
    if state == "completed":
        result = task.get("result")
        click.echo(json.dumps(result) if not isinstance(result, str) else result)
    elif finished(state):
        raise click.ClickException(f"task {task['id']} {state}: {task.get('reason') or '-'}")
    else:
        click.echo(task["id"])


def _await_task(url: str | None, task: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll the task until it is finished, printing each change of state to stderr."""
    deadline = time.monotonic() + timeout
    seen = task["status"]["state"]
    while not finished(seen):
        if time.monotonic() > deadline:
            raise click.ClickException(f"task {task['id']} still {seen} after {timeout:g} s")
        time.sleep(0.2)
        task = gateway_get(url, f"/tasks/{task['id']}", {"history_length": 1})
        state = task["status"]["state"]
        if state != seen:
            note = text_of(task["status"].get("message"))
            who = f" ({short(task.get('assignee_id'))})" if task.get("assignee_id") else ""
            click.echo(f"  {state}{who}" + (f": {note}" if note else ""), err=True)
            seen = state
    return task


COMMANDS = (tasks, delegate)
