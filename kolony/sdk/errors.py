"""What the SDK raises."""

from __future__ import annotations

from schemas.base import CommandRejected


class BusError(RuntimeError):
    """The hub refused the agent, or could not be reached in time."""


class Rejected(BusError):
    """The hub decided against a command; ``rejection`` says why (``code``, ``reason``)."""

    def __init__(self, rejection: CommandRejected) -> None:
        super().__init__(f"{rejection.command_type or 'command'} rejected: {rejection.reason}")
        self.rejection = rejection
        self.code = rejection.code
        self.current_version = rejection.current_version
