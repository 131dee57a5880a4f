"""The deciders' tunables, from the settings (the worker's; the deciders take them as values)."""

from __future__ import annotations

from core.apps import AppPolicy
from core.registry import RegistryPolicy
from core.tasks import TaskPolicy
from kolony.settings import Settings


def task_policy(settings: Settings) -> TaskPolicy:
    return TaskPolicy(
        default_ttl_seconds=settings.task_ttl, default_max_retries=settings.task_max_retries
    )


def app_policy(settings: Settings) -> AppPolicy:
    return AppPolicy(max_failures=settings.app_max_failures)


def registry_policy(settings: Settings) -> RegistryPolicy:
    return RegistryPolicy(default_ttl_seconds=settings.agent_ttl)
