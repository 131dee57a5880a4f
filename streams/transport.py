"""Faust's aiokafka transport with two repairs, selected by the ``kolony://`` broker scheme.

Its consumer seeks every partition it is given to the committed offset (see
``perform_seek``); its producer lends the deciders the aiokafka producer underneath, to
send a batch's records without Faust's one-at-a-time buffer.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


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


class _Producer(faust_aiokafka.Producer):
    def client(self) -> Any:
        """The aiokafka producer underneath (Faust flushes it before committing offsets)."""
        return self._ensure_producer()


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer
