"""An agent's inbox as a plain Kafka client reads it: one partition, filtered by key."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from kolony.kafka import consumer_options
from kolony.partitioning import partition_for
from kolony.settings import Settings
from schemas.inbox import INBOX_ITEM, InboxItem


class Inbox:
    """Collects the deliveries for ``agent_id`` from the moment it starts."""

    def __init__(self, settings: Settings, agent_id: str, *, from_beginning: bool = False) -> None:
        self.settings = settings
        self.agent_id = agent_id
        self.from_beginning = from_beginning
        self.items: list[InboxItem] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Inbox:
        self._consumer = AIOKafkaConsumer(
            **consumer_options(self.settings), enable_auto_commit=False
        )
        await self._consumer.start()
        key = self.agent_id.encode()
        tp = TopicPartition(
            self.settings.topics.agent_inbox, partition_for(key, self.settings.inbox_partitions)
        )
        self._consumer.assign([tp])
        if self.from_beginning:
            await self._consumer.seek_to_beginning(tp)
        else:
            await self._consumer.seek_to_end(tp)
        await self._consumer.position(tp)  # resolve "end" now, before anything is delivered
        self._task = asyncio.create_task(self._read(key))
        return self

    async def _read(self, key: bytes) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                self.items.extend(
                    INBOX_ITEM.validate_json(r.value) for r in records if r.key == key
                )

    def messages(self) -> list[Any]:
        """The message records delivered, in delivery order."""
        return [i.record for i in self.items if i.type == "inbox.message"]

    def of_type(self, kind: str, task_id: str | None = None) -> list[Any]:
        return [
            i for i in self.items if i.type == kind and (task_id is None or i.task.id == task_id)
        ]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
