"""``kolony events tail``: print every event log, oldest first; or follow them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from kolony.follower import partitions_of
from kolony.kafka import client_options, consumer_options, read_backlog, start_clients
from kolony.settings import Settings
from schemas.events import ANY_EVENT, AnyEvent, subject_of


def describe(event: AnyEvent) -> str:
    subject = subject_of(event) or "-"
    detail = ""
    match event.type:
        case "command.rejected":
            detail = f"{event.code}: {event.reason}"
        case "agent.status_changed":
            detail = f"{event.previous} -> {event.status}"
        case "agent.registered" | "agent.renewed":
            detail = f"{event.card.name} {event.card.version}"
        case "task.submitted":
            assignee = event.assignment.agent_id if event.assignment else "waiting"
            detail = f"{event.task.title or ''} -> {assignee}".strip()
        case "task.assigned":
            detail = f"-> {event.assignment.agent_id} ({event.assignment.reason})"
        case "task.released":
            detail = event.reason
        case "task.status_changed":
            detail = f"{event.previous} -> {event.state}" + (
                f" ({event.reason})" if event.reason else ""
            )
        case "message.sent":
            record = event.record
            to = record.capability or ("everyone" if record.delivery == "broadcast" else "")
            detail = f"{record.message_id} -> {to or ', '.join(event.recipients[:3])}"
            if len(event.recipients) > 3 and not to:
                detail += f" (+{len(event.recipients) - 3})"
        case "message.acked":
            detail = f"read {len(event.message_ids)}"
        case "memory.updated":
            detail = f"v{event.item.version} by {event.agent_id or 'operator'}"
        case "memory.deleted":
            detail = f"v{event.version} by {event.agent_id or 'operator'}"
        case "app.registered" | "app.updated":
            detail = f"{event.app.name} at {event.app.mcp_endpoint}"
        case "app.health_changed":
            state = "healthy" if event.healthy else f"failing ({event.consecutive_failures})"
            detail = state + (f": {event.detail}" if event.detail else "")
        case "app.tools_discovered":
            detail = ", ".join(t.name for t in event.tools[:5]) + (
                f" (+{len(event.tools) - 5})" if len(event.tools) > 5 else ""
            )
        case "app.removed":
            detail = event.reason + (f": {event.detail}" if event.detail else "")
        case "app.call_requested":
            detail = f"{event.tool_name} by {event.agent_id or 'operator'}"
        case "app.call_completed":
            error = " (tool error)" if event.is_error else ""
            detail = f"{event.tool_name} in {event.duration_ms:.1f} ms{error}"
        case "app.call_failed":
            detail = f"{event.tool_name} after {event.duration_ms:.1f} ms: {event.error}"
    at = event.occurred_at.isoformat(timespec="milliseconds")
    return f"{at}  {event.type:26} {subject}  {detail}".rstrip()


async def tail(
    settings: Settings,
    *,
    lines: int | None,
    follow: bool,
    type_prefix: str | None,
    as_json: bool,
    echo: Callable[[str], None],
) -> None:
    producer = AIOKafkaProducer(**client_options(settings))  # it only looks up partitions
    consumer = AIOKafkaConsumer(**consumer_options(settings), enable_auto_commit=False)
    await start_clients(settings, producer, consumer)
    try:
        # The producer's lookup waits for a topic's metadata; a consumer's cache may not
        # list a topic created moments ago.
        partitions = await partitions_of(producer, settings.topics.event_logs)
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            first = starts[tp] if lines is None else max(starts[tp], ends[tp] - lines)
            consumer.seek(tp, first)
        backlog = await read_backlog(consumer, ends)
        for record in sorted(backlog, key=lambda r: r.timestamp):
            _print(record.value, type_prefix, as_json, echo)
        while follow:
            batches = await consumer.getmany(timeout_ms=1_000)
            for records in batches.values():
                for record in records:
                    _print(record.value, type_prefix, as_json, echo)
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()
        await producer.stop()


def _print(
    value: bytes, type_prefix: str | None, as_json: bool, echo: Callable[[str], None]
) -> None:
    try:
        event = ANY_EVENT.validate_json(value)
    except ValidationError:
        echo(f"(undecodable event: {value[:80]!r})")
        return
    if type_prefix and not event.type.startswith(type_prefix):
        return
    echo(ANY_EVENT.dump_json(event, exclude_none=True).decode() if as_json else describe(event))
