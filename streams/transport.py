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
        """
        for tp in self.assignment():
            self._read_offset.pop(tp, None)
        await super().perform_seek()
        # aiokafka's seek to committed skips partitions with nothing committed, leaving them
        # wherever the previous generation's fetches left them: past the cleared messages.
        changelogs = set(self.app.tables.changelog_topics)
        for tp in self.assignment():
            uncommitted = self._committed_offset.get(tp) is None
            if uncommitted and tp.topic not in changelogs and "__assignor" not in tp.topic:
                await self.seek(tp, 0)  # below the log start, the reset policy (earliest) applies

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
        """Count offsets as acknowledged (and committable) without a message for each."""
        await super()._add_gap(tp, offset_from, offset_to)


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
