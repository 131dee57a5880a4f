"""Notice when a stream worker stops deciding a command partition that has work waiting.

A safety net under the fix in :mod:`streams.transport` for partitions Faust stopped
delivering after a rebalance. Every two seconds this compares, for each command partition
the worker owns, the committed offset with the partition's end. A partition with work waiting
that made no progress is reported with Faust's and the Kafka client's bookkeeping, resumed and
re-read from its last commit (the deciders drop commands they have decided already): after 4 s
when nothing was even fetched from it and nothing holds it back ("nothing fetched from"),
after 10 s otherwise ("no progress on": its commits stopped), unless records fetched for it
wait in the Kafka client: Faust's next fetch takes those, and a seek would send the partition
to the back of the client's queue to wait again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from faust.types import TP

logger = logging.getLogger(__name__)

STUCK_AFTER = 10.0  # seconds without a commit on a partition with work waiting
# Seconds without a single command read from a partition with work waiting, after which it is
# fetched again. Observed (docs/reliability.md, "Stalls"): after a restart the fetch sometimes
# delivers nothing from some partitions until they are sought again.
STARVED_AFTER = 4.0
CHECK_EVERY = 2.0


class Watchdog:
    def __init__(self, app: Any, topics: list[str]) -> None:
        self.app = app
        self.topics = set(topics)
        # per partition: committed and read offsets, since when each is unchanged
        self._last: dict[TP, tuple[int | None, int | None, float, float]] = {}
        self.stuck: set[TP] = set()

    async def check(self) -> None:
        """Report, resume and re-read command partitions that stopped making progress; a
        check that fails (the broker gone for a moment) is logged, and the next one runs."""
        try:
            await self._check()
        except Exception as exc:  # noqa: BLE001 - the watchdog must outlive what it watches
            logger.warning("the watchdog's check failed: %r", exc)

    async def _check(self) -> None:
        consumer = self.app.consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        for gone in self._last.keys() - set(assigned):  # revoked: start afresh if it returns
            del self._last[gone]
        if not assigned:
            return
        ends = await consumer.highwaters(*assigned)
        now = time.monotonic()
        self.stuck = set()
        for tp in assigned:
            # The next offset to decide: work is waiting while it is below the end.
            committed = consumer._committed_offset.get(tp)
            read = consumer._read_offset.get(tp)  # the last offset handed to the decider
            end = ends.get(tp)
            waiting = end is not None and (committed or 0) < end
            seen = self._last.get(tp)
            if not waiting or seen is None or seen[0] != committed:
                self._last[tp] = (committed, read, now, now)
                continue
            since = seen[2]
            read_since = seen[3] if seen[1] == read else now
            self._last[tp] = (committed, read, since, read_since)
            # Starved: nothing fetched past the commit, nothing fetched and waiting to be
            # handed over, and not held back on purpose (Faust's back-pressure, a pause).
            client = _client_view(consumer, tp)
            starved = (
                client is not None
                and client.position is not None
                and client.position <= (committed or 0)
                and client.waiting is None
                and tp not in consumer._paused_partitions
                and tp not in consumer._buffered_partitions
            )
            if starved and now - read_since >= STARVED_AFTER:
                what, stalled_for = "nothing fetched from", now - read_since
            elif now - since >= STUCK_AFTER:
                what, stalled_for = "no progress on", now - since
            else:
                continue
            self.stuck.add(tp)
            busy = self.app.in_recovery or self.app.rebalancing
            # Records fetched and waiting in the client are handed over by Faust's next fetch;
            # a seek would drop them and put the partition at the back of the client's queue.
            queued = client is not None and client.waiting == "FetchResult"
            if busy:
                outcome = ""  # recovery or the rebalance seeks it
            elif queued:
                outcome = "; its records wait in the client"
            else:
                outcome = "; resuming it"
            logger.warning(
                "%s %s for %.0f s with work waiting: committed=%s end=%s active=%s "
                "paused=%s buffered=%s read=%s in_recovery=%s rebalancing=%s "
                "flow_control=%s fetcher=%s%s",
                what,
                tp,
                stalled_for,
                committed,
                end,
                tp in consumer._get_active_partitions(),
                tp in consumer._paused_partitions,
                tp in consumer._buffered_partitions,
                read,
                self.app.in_recovery,
                self.app.rebalancing,
                self.app.flow_control.is_active(),
                client if client is not None else "unknown",
                outcome,
            )
            if not busy and not queued:
                consumer.resume_partitions({tp})
                consumer._buffered_partitions.discard(tp)
                await consumer.seek(tp, committed or 0)  # re-read from the last commit
                # A refetch keeps the commit's clock: if it does not help, the partition is
                # a stall 10 s after its last commit, and counted as one.
                kept = since if what == "nothing fetched from" else now
                self._last[tp] = (committed, consumer._read_offset.get(tp), kept, now)


@dataclass(frozen=True)
class _ClientView:
    """What the Kafka client under Faust knows of a partition: whether it is paused there,
    the next offset it will fetch, the records fetched and not yet handed to Faust, its
    leader and the brokers a fetch is in flight to (a diagnosis for partitions the fetch
    stopped delivering)."""

    paused: bool
    position: int | None
    waiting: str | None  # the type of what waits (records, an error), None: nothing
    leader: int | None
    in_flight: list[int]
    fetch_task_done: bool

    def __str__(self) -> str:
        return (
            f"{{paused={self.paused} position={self.position} records={self.waiting}"
            f" leader={self.leader} in_flight={self.in_flight}"
            f" fetch_task_done={self.fetch_task_done}}}"
        )


def _client_view(consumer: Any, tp: TP) -> _ClientView | None:
    """The client's view of ``tp`` (None: not started, or ``tp`` not assigned there yet)."""
    try:
        client = consumer._thread._ensure_consumer()
        fetcher = client._fetcher
        state = fetcher._subscriptions.subscription.assignment.state_value(tp)
        waiting = fetcher._records.get(tp)
        return _ClientView(
            paused=state.paused,
            position=state.position if state.has_valid_position else None,
            waiting=type(waiting).__name__ if waiting is not None else None,
            leader=client._client.cluster.leader_for_partition(tp),
            in_flight=sorted(fetcher._in_flight),
            fetch_task_done=fetcher._fetch_task.done(),
        )
    except Exception:  # noqa: BLE001 - a diagnosis must not break the watchdog
        return None
