"""The agents' inbox topic, as the deciders that deliver to it see it."""

from __future__ import annotations

from typing import Any

import faust

from kolony.partitioning import partition_for
from kolony.settings import Settings
from schemas.inbox import INBOX_ITEM, InboxItem
from streams.codec import raw_topic


class Inbox:
    """Deliveries keyed by the recipient's agent id: an agent reads one partition."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.partitions = settings.inbox_partitions
        self.topic = raw_topic(app, settings.topics.agent_inbox, self.partitions)

    def deliver(self, decider: Any, item: InboxItem) -> None:
        """Queue a delivery in ``decider``'s batch (a :class:`streams.shell.BatchDecider`)."""
        key = item.agent_id.encode()
        payload = INBOX_ITEM.dump_json(item, exclude_none=True)
        decider.send(self.topic, key, payload, partition_for(key, self.partitions))
