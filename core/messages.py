"""The messages decider: send, broadcast, acknowledge, delete; and who receives what.

State is per agent id (the sender's, or the reader's for acks). Who may receive is a
question about the whole network, answered by a :class:`Network` (the worker's view),
like the clock; the answer is recorded in the event, so replay never asks again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from core.envelopes import envelope, rejection, remember
from schemas.base import CommandRejected, RejectionCode
from schemas.inbox import MessageDelivery
from schemas.messages import (
    AckMessages,
    BroadcastMessage,
    DeleteMessage,
    Delivery,
    MessageCommand,
    MessageDeleted,
    MessageEvent,
    MessageRecord,
    MessagesAcked,
    MessageSent,
    MessagingState,
    SendMessage,
    message_key,
)
from schemas.registry import AgentStatus

REMEMBERED_MESSAGES = 32


class Network(Protocol):
    """What the decider needs to know about agents and tasks it does not own."""

    def status_of(self, agent_id: str) -> AgentStatus | None:
        """None: not registered (never, or not any more)."""

    def was_registered(self, agent_id: str) -> bool: ...

    def parties_of(self, task_id: str) -> tuple[str, ...] | None:
        """The task's requester and assignee (None: no such task)."""

    def reachable(self, capability: str | None) -> list[str]:
        """Agents that are not offline (with ``capability``, if given)."""


def initial_state() -> MessagingState:
    return MessagingState()


def decide(
    command: MessageCommand, state: MessagingState, now: datetime, network: Network
) -> list[MessageEvent]:
    """The events ``command`` causes (empty: a redelivered command)."""
    if command.command_id in state.recent_command_ids:
        return []
    match command:
        case SendMessage() | BroadcastMessage():
            return _send(command, state, now, network)
        case AckMessages():
            common = envelope(command.command_id, command.correlation_id, state.seq, now)
            ids = tuple(dict.fromkeys(command.message_ids))
            return [MessagesAcked(**common, agent_id=command.agent_id, message_ids=ids)]
        case DeleteMessage():
            return _delete(command, state, now)


def evolve(state: MessagingState, event: MessageEvent) -> MessagingState:
    if isinstance(event, CommandRejected) or event.seq <= state.seq:
        return state
    update: dict[str, object] = {
        "seq": event.seq,
        "recent_command_ids": remember(state.recent_command_ids, event.command_id),
    }
    match event:
        case MessageSent():
            update["sent"] = state.sent + 1
            update["recent_message_ids"] = _keep(state.recent_message_ids, event.record.message_id)
        case MessageDeleted():
            update["deleted_message_ids"] = _keep(state.deleted_message_ids, event.message_id)
    return state.model_copy(update=update)


def fold(events: Iterable[MessageEvent], state: MessagingState | None = None) -> MessagingState:
    result = state if state is not None else initial_state()
    for event in events:
        result = evolve(result, event)
    return result


def deliveries_for(event: MessageEvent) -> list[MessageDelivery]:
    """One inbox item per recipient of a sent message; ``delivery_id`` is stable."""
    if not isinstance(event, MessageSent):
        return []
    return [
        MessageDelivery(
            delivery_id=f"{event.event_id}:{agent_id}",
            agent_id=agent_id,
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            record=event.record,
        )
        for agent_id in event.recipients
    ]


def _send(
    command: SendMessage | BroadcastMessage,
    state: MessagingState,
    now: datetime,
    network: Network,
) -> list[MessageEvent]:
    message = command.message
    if message.message_id in state.recent_message_ids:
        reason = f"message {message.message_id!r} was sent already"
        return [_reject(command, now, "conflict", reason, state.seq)]
    sender = command.sender_id
    if isinstance(command, BroadcastMessage):
        kind = Delivery.BROADCAST
        task_id = None
        recipients = [a for a in network.reachable(command.capability) if a != sender]
    else:
        task_id = command.task_id or message.task_id
        if not command.to and task_id is None:
            reason = "a message needs recipients (to) or a task thread (task_id)"
            return [_reject(command, now, "invalid", reason, state.seq)]
        for agent_id in command.to:
            if network.status_of(agent_id) is None:
                why = "deregistered" if network.was_registered(agent_id) else "is not registered"
                reason = f"cannot deliver to agent {agent_id!r}: it {why}"
                return [_reject(command, now, "not_found", reason, state.seq)]
        parties: tuple[str, ...] = ()
        if task_id is not None:
            found = network.parties_of(task_id)
            if found is None:
                reason = f"task {task_id!r} does not exist: there is no thread to post to"
                return [_reject(command, now, "not_found", reason, state.seq)]
            # A party that has deregistered since no longer hears the thread.
            parties = tuple(p for p in found if network.status_of(p) is not None)
        kind = Delivery.TASK if task_id is not None else Delivery.DIRECT
        recipients = [a for a in dict.fromkeys((*command.to, *parties)) if a != sender]
    common = envelope(command.command_id, command.correlation_id, state.seq, now)
    record = MessageRecord(
        message_id=message.message_id,
        sender_id=sender,
        delivery=kind,
        message_type=command.message_type,
        message=message,
        task_id=task_id,
        capability=command.capability.lower()
        if isinstance(command, BroadcastMessage) and command.capability
        else None,
        recipient_count=len(recipients),
        sent_at=now,
        seq=state.sent + 1,
    )
    return [MessageSent(**common, sender_id=sender, record=record, recipients=tuple(recipients))]


def _delete(command: DeleteMessage, state: MessagingState, now: datetime) -> list[MessageEvent]:
    if command.message_id in state.deleted_message_ids:
        reason = f"message {command.message_id!r} is deleted already"
        return [_reject(command, now, "not_found", reason, state.seq)]
    common = envelope(command.command_id, command.correlation_id, state.seq, now)
    return [
        MessageDeleted(
            **common,
            sender_id=command.sender_id,
            message_id=command.message_id,
            reason=command.reason,
        )
    ]


def _keep(recent: tuple[str, ...], item: str) -> tuple[str, ...]:
    return (*recent, item)[-REMEMBERED_MESSAGES:]


def _reject(
    command: MessageCommand, now: datetime, code: RejectionCode, reason: str, seq: int
) -> CommandRejected:
    return rejection(
        command.command_id,
        command.correlation_id,
        command.type,
        message_key(command),
        now,
        code,
        reason,
        seq=seq,
    )
