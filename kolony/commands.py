"""What every command a Kolony process issues carries: a fresh id, the time, the issuer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


def new_envelope(issued_by: str, correlation_id: str | None = None) -> dict[str, Any]:
    """The envelope fields of a new command (``CommandEnvelope``), issued now."""
    return {
        "command_id": str(uuid.uuid4()),
        "correlation_id": correlation_id,
        "issued_at": datetime.now(UTC),
        "issued_by": issued_by,
    }
