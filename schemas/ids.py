"""Deterministic ids: the same inputs always give the same id, on any machine."""

from __future__ import annotations

import uuid

KOLONY_NAMESPACE = uuid.UUID("6f1c2d2e-8b1a-5a8e-9a61-4b6f6c6f6e79")


def agent_id_for(name: str, version: str) -> str:
    """The agent id of a card: same name and version, same id (renewals keep it)."""
    return str(uuid.uuid5(KOLONY_NAMESPACE, f"agent\x00{name}\x00{version}"))


def app_id_for(name: str) -> str:
    """An app's id: registering the same name again updates that app."""
    return str(uuid.uuid5(KOLONY_NAMESPACE, f"app\x00{name}"))


def event_id_for(cause: str, index: int) -> str:
    """The id of the ``index``-th event caused by ``cause``: re-deciding re-creates it."""
    return str(uuid.uuid5(KOLONY_NAMESPACE, f"event\x00{cause}\x00{index}"))
