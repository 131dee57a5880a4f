"""A stream worker's view of the whole network: every agent, and every agent's open tasks.

Tasks are keyed by task id, agents by agent id, so the worker that owns a task does not
own the agents it may route it to. Each worker therefore folds the agent and task event
logs of every partition (outside its consumer group) into an :class:`AgentDirectory`,
and routes by it. The view lags the log by about one fetch; the worker's own task
decisions are applied to it at once, so a burst of tasks spreads over the agents.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from core.directory import AgentDirectory
from kolony.follower import LogFollower, close_quietly
from kolony.kafka import client_options
from kolony.settings import Settings
from schemas.registry import AGENT_EVENT
from schemas.tasks import TASK_EVENT

logger = logging.getLogger(__name__)


class NetworkView:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = AgentDirectory()
        topics = settings.topics
        self._agent_events = topics.agent_events
        self.follower = LogFollower(
            settings,
            [topics.agent_events, topics.task_events],
            self._on_records,
            name="kolony-network-view",
        )
        self._producer: AIOKafkaProducer | None = None

    @property
    def caught_up(self) -> bool:
        return self.follower.caught_up.is_set()

    async def wait_caught_up(self) -> None:
        await self.follower.caught_up.wait()

    async def run(self) -> None:
        """Follow the logs until cancelled (a Faust app task)."""
        # The producer only looks up partitions (its metadata refresh waits for new topics).
        self._producer = AIOKafkaProducer(**client_options(self.settings))
        await self._producer.start()
        try:
            await self.follower.start(self._producer)
            await self.follower.wait_forever()
        finally:
            await self.follower.stop()
            await close_quietly(self._producer)

    def _on_records(self, topic: str, records: Sequence[Any]) -> None:
        agents = topic == self._agent_events
        for record in records:
            try:
                if agents:
                    self.directory.apply(AGENT_EVENT.validate_json(record.value))
                else:
                    self.directory.apply_task(TASK_EVENT.validate_json(record.value))
            except ValidationError:
                logger.warning("skipping an undecodable event at %s@%s", topic, record.offset)
            except Exception:  # a bug in a fold: one event skipped, said loudly, not the rest
                logger.exception("folding the event at %s@%s failed", topic, record.offset)
