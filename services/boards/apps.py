"""The gateway's read model of the app registry, folded from the apps event log."""

from __future__ import annotations

from core import apps as apps_core
from schemas.apps import App, AppEntry, AppEvent
from schemas.base import CommandRejected
from schemas.events import subject_of


class AppBoard:
    """Every registered app by id, as the decider's own ``evolve`` folds it."""

    def __init__(self) -> None:
        self._entries: dict[str, AppEntry] = {}

    def apply(self, event: AppEvent) -> None:
        if isinstance(event, CommandRejected):
            return
        app_id = subject_of(event)
        if app_id is None:
            return
        before = self._entries.get(app_id, apps_core.initial_state())
        self._entries[app_id] = apps_core.evolve(before, event)

    def get(self, app_id: str) -> App | None:
        entry = self._entries.get(app_id)
        return entry.app if entry is not None else None

    def apps(self) -> list[App]:
        """Registered apps, by name."""
        found = [e.app for e in self._entries.values() if e.app is not None]
        return sorted(found, key=lambda app: (app.name, app.app_id))
