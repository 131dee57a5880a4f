"""Operational records that are not domain events."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, TypeAdapter

from schemas.base import Frozen


class WorkerBeacon(Frozen):
    """A stream worker's periodic sign of life, with the partitions it owns."""

    type: Literal["worker.beacon"] = "worker.beacon"
    worker_id: str
    app_id: str
    at: AwareDatetime
    interval_seconds: float
    active_partitions: tuple[int, ...]
    agents_owned: int
    commands_decided: int = 0
    tasks_open: int = 0
    network_view_caught_up: bool = True


WORKER_BEACON = TypeAdapter(WorkerBeacon)
