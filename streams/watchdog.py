"""Notice when a stream worker stops reading a command partition that has work waiting.

Faust sometimes leaves a partition unread after a rebalance (see docs/design.md, "a stalled
survivor"). Every few seconds this compares, for each command partition the worker owns,
what it has read with the partition's end; a partition that has work but made no progress
for a while is reported with Faust's consumer bookkeeping, and resumed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from faust.types import TP

logger = logging.getLogger(__name__)

STUCK_AFTER = 10.0  # seconds without progress on a partition with work waiting


class Watchdog:
    def __init__(self, app: Any, topics: list[str]) -> None:
        self.app = app
        self.topics = set(topics)
        self._last: dict[TP, tuple[int | None, float]] = {}
        self.stuck: set[TP] = set()

    async def check(self) -> None:
        consumer = self.app.consumer
        if self.app.in_recovery or self.app.rebalancing:
            self._last.clear()
            return
        assigned = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        if not assigned:
            return
        ends = await consumer.highwaters(*assigned)
        now = time.monotonic()
        self.stuck = set()
        for tp in assigned:
            read = consumer._read_offset.get(tp)  # the last offset Faust handed to a stream
            end = ends.get(tp)
            waiting = end is not None and (read is None or read + 1 < end)
            seen, since = self._last.get(tp, (None, now))
            if not waiting or read != seen:
                self._last[tp] = (read, now)
                continue
            if now - since < STUCK_AFTER:
                continue
            self.stuck.add(tp)
            logger.warning(
                "no progress on %s for %.0f s with work waiting: read=%s end=%s active=%s "
                "paused=%s buffered=%s committed=%s; resuming it",
                tp,
                now - since,
                read,
                end,
                tp in consumer._get_active_partitions(),
                tp in consumer._paused_partitions,
                tp in consumer._buffered_partitions,
                consumer._committed_offset.get(tp),
            )
            consumer.resume_partitions({tp})
            consumer._buffered_partitions.discard(tp)
