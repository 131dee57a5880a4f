"""Faust's aiokafka transport with Kolony's fetch wait.

Faust fixes the consumer's ``fetch_max_wait_ms`` at 1500 ms. Real Kafka answers a
fetch as soon as data arrives, so that only bounds idle polling; the embedded broker
answers when the wait runs out, so there it is the latency floor. The worker's consumer
is handed to the app's :class:`kolony.fetchwait.AdaptiveFetchWait`; the ``kolony://``
broker scheme selects this transport. Its producer also lends the deciders the aiokafka
producer underneath, to send a batch's records without Faust's one-at-a-time buffer.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        fetch_wait = getattr(self.consumer.app, "fetch_wait", None)
        if fetch_wait is not None:
            fetch_wait.attach(consumer)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
