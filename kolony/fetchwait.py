"""Adaptive fetch waits for brokers that do not answer a fetch when data arrives.

A Kafka consumer's fetch asks the broker to wait up to ``fetch_max_wait_ms`` for data.
Apache Kafka answers as soon as data arrives, so the wait costs nothing. The embedded
broker answers only when the wait runs out: a short wait is the latency floor, and
every idle fetch costs CPU on both sides (measured: 2 ms waits burn ~60% of a core
while idle, 100 ms waits ~8%). So consumers wait briefly while traffic flows and long
while idle; the first request after an idle spell pays one long wait per hop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any


class AdaptiveFetchWait:
    """Sets the fetch wait of attached aiokafka consumers from recent activity."""

    def __init__(self, busy_ms: int, idle_ms: int, idle_after: float = 3.0) -> None:
        self.busy_ms = busy_ms
        self.idle_ms = max(idle_ms, busy_ms)
        self.idle_after = idle_after
        self._consumers: list[Any] = []
        self._lock = threading.Lock()
        self._last_activity = time.monotonic()
        self._current = self.busy_ms

    @property
    def adaptive(self) -> bool:
        return self.idle_ms != self.busy_ms

    def attach(self, consumer: Any) -> None:
        """Manage ``consumer`` (before or after it started; it may live on another thread)."""
        with self._lock:
            self._consumers.append(consumer)
        self._apply(consumer, self._current)

    def touch(self) -> None:
        """Traffic: wait briefly from the next fetch on."""
        self._last_activity = time.monotonic()
        if self._current != self.busy_ms:
            self._set(self.busy_ms)

    async def run(self) -> None:
        """Fall back to the long wait once nothing happened for ``idle_after`` seconds."""
        if not self.adaptive:
            return
        while True:
            await asyncio.sleep(0.25)
            idle = time.monotonic() - self._last_activity > self.idle_after
            if idle and self._current != self.idle_ms:
                self._set(self.idle_ms)

    def _set(self, wait_ms: int) -> None:
        self._current = wait_ms
        with self._lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            self._apply(consumer, wait_ms)

    @staticmethod
    def _apply(consumer: Any, wait_ms: int) -> None:
        # aiokafka reads the consumer's value when it builds its fetcher, and the
        # fetcher's value for every fetch request; neither is public API.
        consumer._fetch_max_wait_ms = wait_ms
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = wait_ms
