"""Faust's aiokafka transport with a configurable fetch wait.

Faust fixes the consumer's ``fetch_max_wait_ms`` at 1500 ms. Real Kafka answers a
fetch as soon as data arrives, so that only bounds idle polling; the embedded broker
answers when the wait runs out, so there it is the latency floor. Kolony sets it per
app (``KOLONY_FETCH_MAX_WAIT_MS``); the ``kolony://`` broker scheme selects this class.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

DEFAULT_FETCH_MAX_WAIT_MS = 1500


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.consumer.app, "fetch_max_wait_ms", DEFAULT_FETCH_MAX_WAIT_MS)
        # aiokafka reads this when it builds its fetcher in start(), which comes later.
        consumer._fetch_max_wait_ms = wait
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
