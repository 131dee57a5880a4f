"""Where a command goes, decided by its type: the log it belongs to (its commands topic, and
the events topic its outcome appears on) and its key (the entity it changes).

One rule for every side: the worker's deciders take an entity's key from here, and every
publisher (the gateway, the SDK, the CLI, the worker's own timers) sends through it, so no
call site picks a topic or a key by hand. docs/protocol.md says the same, topic by topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from schemas.apps import AppCommand
from schemas.memory import MemoryCommand
from schemas.messages import MessageCommand, message_key
from schemas.registry import AgentCommand
from schemas.tasks import TaskCommand
from schemas.topics import Topics


@dataclass(frozen=True)
class Route:
    commands: str  # the topic the command is published to
    events: str  # the topic its outcome (an event, or command.rejected) appears on
    key: str  # the entity it changes: the record key, and so the partition


def _members(union: Any) -> tuple[type, ...]:
    """The command classes of ``Annotated[A | B | ..., Field(discriminator=...)]``."""
    (members, *_) = get_args(union)
    return get_args(members)


# log (as named in Topics: ``<log>_commands``, ``<log>_events``) and the entity's key
_LOGS: tuple[tuple[Any, str, Callable[[Any], str]], ...] = (
    (AgentCommand, "agent", lambda c: c.agent_id),
    (TaskCommand, "task", lambda c: c.task_id),
    (MessageCommand, "message", message_key),
    (MemoryCommand, "memory", lambda c: c.key),
    (AppCommand, "app", lambda c: c.app_id),
)
_BY_TYPE: dict[type, tuple[str, Callable[[Any], str]]] = {
    member: (log, key) for union, log, key in _LOGS for member in _members(union)
}


def command_key(command: Any) -> str:
    """The id of the entity ``command`` changes: its record key."""
    return _of(command)[1](command)


def route(topics: Topics, command: Any) -> Route:
    """The topics and key of ``command``."""
    log, key = _of(command)
    return Route(
        commands=getattr(topics, f"{log}_commands"),
        events=getattr(topics, f"{log}_events"),
        key=key(command),
    )


def _of(command: Any) -> tuple[str, Callable[[Any], str]]:
    try:
        return _BY_TYPE[type(command)]
    except KeyError:
        raise TypeError(f"{type(command).__name__} is not a Kolony command") from None
