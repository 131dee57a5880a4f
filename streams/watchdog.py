"""Notice when a stream worker stops deciding a command partition that has work waiting.

A safety net under the fix in :mod:`streams.transport` for partitions Faust stopped
delivering after a rebalance. Every few seconds this compares, for each command partition
the worker owns, the committed offset with the partition's end; a partition with work that
made no progress for a while is reported with Faust's bookkeeping, resumed and re-read from
its last commit (the deciders drop commands they have decided already).
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
        """Report, resume and re-read command partitions that stopped making progress."""
        consumer = self.app.consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        if not assigned:
            return
        ends = await consumer.highwaters(*assigned)
        now = time.monotonic()
        self.stuck = set()
        for tp in assigned:
            # The next offset to decide: work is waiting while it is below the end.
            read = consumer._committed_offset.get(tp)
            end = ends.get(tp)
            waiting = end is not None and (read or 0) < end
            if not waiting or tp not in self._last or self._last[tp][0] != read:
                self._last[tp] = (read, now)
                continue
            since = self._last[tp][1]
            if now - since < STUCK_AFTER:
                continue
            self.stuck.add(tp)
            busy = self.app.in_recovery or self.app.rebalancing
            logger.warning(
                "no progress on %s for %.0f s with work waiting: committed=%s end=%s active=%s "
                "paused=%s buffered=%s read=%s in_recovery=%s rebalancing=%s "
                "flow_control=%s%s",
                tp,
                now - since,
                read,
                end,
                tp in consumer._get_active_partitions(),
                tp in consumer._paused_partitions,
                tp in consumer._buffered_partitions,
                consumer._read_offset.get(tp),
                self.app.in_recovery,
                self.app.rebalancing,
                self.app.flow_control.is_active(),
                "" if busy else "; resuming it",
            )
            if not busy:
                consumer.resume_partitions({tp})
                consumer._buffered_partitions.discard(tp)
                await consumer.seek(tp, read or 0)  # re-read from the last commit
                self._last[tp] = (read, now)
