"""Faust's aiokafka transport with three repairs, selected by the ``kolony://`` broker scheme.

Its consumer seeks every partition it is given to the committed offset (see
``perform_seek``) and never counts a command it did not deliver as acknowledged (see
``_add_gap``); its producer lends the deciders the aiokafka producer underneath, to send a
batch's records without Faust's one-at-a-time buffer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransportOptions:
    """What Kolony tells its transport, as the app's ``kolony_transport`` attribute (Faust's
    settings have no place for it)."""

    # The command topics the deciders read skipped offsets of (without transactions).
    decided_topics: frozenset[str] = frozenset()
    # An idempotent producer: a send retried after a broker failover is written once.
    idempotence: bool = False

    def install(self, app: Any) -> None:
        app.kolony_transport = self


def options_of(app: Any) -> TransportOptions:
    found: TransportOptions = getattr(app, "kolony_transport", TransportOptions())
    return found


class _Consumer(faust_aiokafka.Consumer):
    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset, forgetting what was read before.

        Faust drops a fetched message whose offset is below the last one it read from that
        partition. Its seek updates that mark only for partitions that have a committed
        offset, so a partition read during one generation of the group (messages that a
        rebalance then cleared from the stream buffers) but never committed kept a stale
        mark, and aiokafka does not move such a partition at all: its messages were never
        fetched again, and the worker never decided them (the "stalled survivor").

        Nothing is fetched while it seeks. Faust seeks as it resumes the streams after an
        assignment, and right after the seek it clears the stream buffers. A rebalance has
        stopped the flow by then, but a worker's first assignment has not (there was nothing
        to revoke): records fetched after the seek, while it waited for the committed offsets,
        went into buffers that were then cleared, with the fetch already past them. After a
        restart the deciders read such ranges back when a later command showed the hole
        ("commands the fetch skipped were read back"); a partition where nothing came later
        waited, undecided, for the watchdog (the chaos suite saw 7 partitions at once).
        """
        flowing = self.flow_active
        self.stop_flow()
        try:
            await self._seek_to_committed()
        finally:
            if flowing:
                self.resume_flow()

    async def _seek_to_committed(self) -> None:
        for tp in self.assignment():
            self._read_offset.pop(tp, None)
        await super().perform_seek()
        # aiokafka's seek to committed skips partitions with nothing committed, leaving them
        # wherever the previous generation's fetches left them: past the cleared messages.
        changelogs = set(self.app.tables.changelog_topics)
        uncommitted = [
            tp
            for tp in self.assignment()
            if self._committed_offset.get(tp) is None
            and tp.topic not in changelogs
            and "__assignor" not in tp.topic
        ]
        for tp in uncommitted:
            await self.seek(tp, 0)  # below the log start, the reset policy (earliest) applies
        decided = options_of(self.app).decided_topics
        heads = [tp for tp in uncommitted if tp.topic in decided]
        self._kolony_starts = dict(await self.earliest_offsets(*heads)) if heads else {}

    def decide_from(self, tp: Any) -> int | None:
        """The first offset of ``tp`` this consumer must decide: the committed one, or the
        log's start where nothing is committed (None: not known)."""
        committed: int | None = self._committed_offset.get(tp)
        if committed is not None:
            return committed
        starts: dict[Any, int] = getattr(self, "_kolony_starts", {})
        return starts.get(tp)

    def _new_offset(self, tp: Any) -> int | None:
        """Faust commits past a skipped first offset: it checks the head of the acked
        offsets against the committed one only when something non-zero was committed, and
        lets a gap of exactly one offset through (``min(acked) - committed > 1``). For the
        command topics nothing is committed while the first offset to decide is not acked."""
        if tp.topic in options_of(self.app).decided_topics:
            first = self.decide_from(tp)
            acked = self._acked[tp]
            lowest = min([*acked, *(gap.begin for gap in self._gap[tp])], default=None)
            if first is not None and lowest is not None and lowest > first:
                return None
        offset: int | None = super()._new_offset(tp)
        return offset

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Faust counts offsets its fetch skipped as acknowledged, so a commit passes them.

        Offsets skip legitimately (compaction, transaction markers), but also when messages
        were fetched and then dropped (a rebalance clears the stream buffers while the fetch
        goes on): acking those lost commands, each one a client was told was accepted. For
        the command topics the decider reads such a range itself, decides what is in it,
        and acks it (:meth:`acknowledge_range`) once its results are written.
        """
        if tp.topic in options_of(self.app).decided_topics:
            logger.info("offsets %d..%d of %s skipped by the fetch", offset_from, offset_to, tp)
            return
        await super()._add_gap(tp, offset_from, offset_to)

    async def acknowledge_range(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Count offsets as acknowledged (and committable) without a message for each.

        Not through Faust's ``_add_gap``: it drops the committed offset itself (it takes it
        for the last one processed, while it is the next one to read), so a command read
        back at the head of its partition was never acknowledged, and the partition's
        commits stopped until the worker restarted (the chaos suite's watchdog saw it).
        """
        committed: int | None = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed)
        if offset_from <= offset_to:
            gaps = self._gap[tp]
            gaps.addi(offset_from, offset_to + 1)  # intervals exclude their end
            gaps.merge_overlaps()


class _Producer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        """Idempotent without transactions too: Faust's own producer retries a send whose
        answer a dying broker lost, and without idempotence the log then holds the event
        twice (the chaos suite saw it: a decision written twice, one seq twice)."""
        extra = dict(super()._settings_extra())
        if options_of(self.app).idempotence:
            extra |= {"acks": "all", "enable_idempotence": True}
        return extra

    def client(self) -> Any:
        """The aiokafka producer underneath (Faust flushes it before committing offsets)."""
        return self._ensure_producer()


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer
