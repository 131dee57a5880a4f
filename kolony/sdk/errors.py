"""What the SDK raises."""

from __future__ import annotations

from schemas.base import CommandRejected


class BusError(RuntimeError):
    """The hub refused the agent, or could not be reached in time."""


class Rejected(BusError):
    """The hub decided against a request: ``code`` (invalid, not_found, conflict, forbidden)
    and ``reason`` say why; a lost compare-and-set also gives ``current_version``."""

    def __init__(
        self,
        code: str,
        reason: str,
        *,
        what: str | None = None,
        current_version: int | None = None,
    ) -> None:
        super().__init__(f"{what or 'request'} rejected: {reason}")
        self.code = code
        self.reason = reason
        self.current_version = current_version

    @classmethod
    def of(cls, rejection: CommandRejected) -> Rejected:
        return cls(
            rejection.code,
            rejection.reason,
            what=rejection.command_type,
            current_version=rejection.current_version,
        )
