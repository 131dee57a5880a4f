"""How long the SDK waits before trying again."""

from __future__ import annotations

import random

FIRST_RETRY = 0.1  # seconds; doubles with every attempt
MAX_RETRY = 5.0


def backoff(attempt: int, cap: float = MAX_RETRY) -> float:
    """Exponential backoff with jitter: attempt 1 waits 0.05–0.1 s, then doubling up to
    ``cap``; each wait is drawn from the upper half of its step."""
    delay = min(FIRST_RETRY * float(2 ** (attempt - 1)), cap)
    return delay / 2 + random.random() * delay / 2  # noqa: S311 - not cryptographic
