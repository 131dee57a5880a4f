"""Topic names: public protocol, defined once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Every topic Kolony uses, under one prefix (``kolony`` unless configured)."""

    prefix: str = "kolony"

    @property
    def agent_commands(self) -> str:
        return f"{self.prefix}.agents.commands"

    @property
    def agent_events(self) -> str:
        return f"{self.prefix}.agents.events"

    @property
    def task_commands(self) -> str:
        return f"{self.prefix}.tasks.commands"

    @property
    def task_events(self) -> str:
        return f"{self.prefix}.tasks.events"

    @property
    def message_commands(self) -> str:
        return f"{self.prefix}.messages.commands"

    @property
    def message_events(self) -> str:
        return f"{self.prefix}.messages.events"

    @property
    def memory_commands(self) -> str:
        return f"{self.prefix}.memory.commands"

    @property
    def memory_events(self) -> str:
        return f"{self.prefix}.memory.events"

    @property
    def app_commands(self) -> str:
        return f"{self.prefix}.apps.commands"

    @property
    def app_events(self) -> str:
        return f"{self.prefix}.apps.events"

    @property
    def app_calls(self) -> str:
        """What the proxy observed of each app tool call, keyed by app id."""
        return f"{self.prefix}.apps.calls"

    @property
    def agent_inbox(self) -> str:
        """Deliveries to agents, keyed by the recipient's agent id."""
        return f"{self.prefix}.agents.inbox"

    @property
    def event_logs(self) -> tuple[str, ...]:
        """Every event log: the source of truth, replayed to rebuild any state."""
        return (
            self.agent_events,
            self.task_events,
            self.message_events,
            self.memory_events,
            self.app_events,
            self.app_calls,
        )

    def public(self) -> dict[str, str]:
        """The topics a client may use, by role (``GET /system/info`` lists them)."""
        roles = (
            "agent_commands",
            "agent_events",
            "task_commands",
            "task_events",
            "message_commands",
            "message_events",
            "memory_commands",
            "memory_events",
            "app_commands",
            "app_events",
            "app_calls",
            "agent_inbox",
            "system",
        )
        return {role: getattr(self, role) for role in roles}

    @property
    def system(self) -> str:
        """Worker liveness beacons, read by gateways for ``GET /health``."""
        return f"{self.prefix}.system"

    @property
    def app_id(self) -> str:
        """The Faust app id: consumer group and changelog topic prefix."""
        return self.prefix

    def changelog(self, table: str) -> str:
        return f"{self.app_id}-{table}-changelog"


AGENTS_TABLE = "agents"
TASKS_TABLE = "tasks"
MESSAGING_TABLE = "messaging"
MEMORY_TABLE = "memory"
APPS_TABLE = "apps"
