"""Build the Faust app that runs Kolony's stream processors."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from faust.auth import OAuthCredentials
from faust.tables import TableManager

from kolony.kafka import BrokerUnavailable, client_options, require_bootstrap, ssl_context
from kolony.settings import Settings
from schemas.system import WORKER_BEACON, WorkerBeacon
from streams import storage
from streams.apps import AppProcessor
from streams.codec import raw_topic
from streams.inbox import Inbox
from streams.memory import MemoryProcessor
from streams.messages import MessageProcessor
from streams.registry import RegistryProcessor
from streams.tasks import TaskProcessor
from streams.transport import TransportOptions
from streams.view import NetworkView
from streams.watchdog import CHECK_EVERY, Watchdog

logger = logging.getLogger(__name__)


class KolonyWorker:
    """The Faust app plus Kolony's processors and the beacon gateways watch for health."""

    def __init__(self, settings: Settings, cluster_id: str | None = None) -> None:
        """``cluster_id``: the Kafka cluster's, to keep tables of another cluster apart."""
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.store = storage.claim(settings)
        try:
            self.app = build_faust_app(
                settings, self.store.tables(settings.topics.app_id, cluster_id)
            )
        except BaseException:
            self.store.release()
            raise
        self.view = NetworkView(settings)
        self.registry = RegistryProcessor(self.app, settings, self.view)
        inbox = Inbox(self.app, settings)
        self.tasks = TaskProcessor(self.app, settings, self.view, inbox)
        self.messages = MessageProcessor(self.app, settings, self.view, inbox)
        self.memory = MemoryProcessor(self.app, settings, self.view, inbox)
        self.apps = AppProcessor(self.app, settings)
        self.app.task(self.view.run)
        self.processors = (self.registry, self.tasks, self.messages, self.memory, self.apps)
        commands = [p.commands.get_topic_name() for p in self.processors]
        TransportOptions(
            # Without transactions the deciders read the commands the fetch skips
            # (streams.transport, _add_gap).
            decided_topics=frozenset(commands if settings.exactly_once is not True else ()),
            idempotence=settings.idempotence,
        ).install(self.app)
        self.watchdog = Watchdog(self.app, commands)
        self.app.timer(CHECK_EVERY, name=f"{settings.topic_prefix}.watchdog")(self.watchdog.check)
        self.system = raw_topic(self.app, settings.topics.system, 1)
        self.app.timer(settings.beacon_interval, name=f"{settings.topic_prefix}.beacon")(
            self._beacon
        )
        # The first beacon goes out once the tables are recovered, at once: until then the
        # worker decides nothing, and gateways (a hub's /health) must not count it ready.
        self._ready = False
        self.registry.table.on_recover(self._recovered)

    async def _recovered(self) -> None:
        self._ready = True
        await self._beacon()

    async def _beacon(self) -> None:
        if not self._ready:
            return
        beacon = WorkerBeacon(
            worker_id=self.worker_id,
            app_id=self.settings.topics.app_id,
            at=datetime.now(UTC),
            interval_seconds=self.settings.beacon_interval,
            active_partitions=tuple(sorted(self.registry.owned_partitions())),
            agents_owned=self.registry.agents_owned(),
            commands_decided=sum(p.decided for p in self.processors),
            tasks_open=self.tasks.tasks_open(),
            network_view_caught_up=self.view.caught_up,
        )
        self.system.send_soon(key=self.worker_id.encode(), value=WORKER_BEACON.dump_json(beacon))


class _TableManager(TableManager):
    async def on_start(self) -> None:
        """Faust's, without its first second of sleep: it waits for tables declared after the
        app started, and Kolony declares every table before (one added later is refused, "Too
        late to add tables"). A worker starts, and restarts after a crash, a second sooner."""
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def build_faust_app(settings: Settings, datadir: Path) -> faust.App:
    brokers = [f"kolony://{host.strip()}" for host in require_bootstrap(settings).split(",")]
    store = "rocksdb://" if storage.on_disk(settings) else "memory://"
    return faust.App(
        settings.topics.app_id,
        broker=brokers,
        broker_credentials=faust_credentials(settings),
        store=store,
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="exactly_once" if settings.exactly_once is True else "at_least_once",
        broker_session_timeout=settings.session_timeout,
        consumer_group_instance_id=settings.worker_name,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=settings.commit_interval,
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_batch_size=512 * 1024,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=32_768,
        # No cap on a fetch: the Kafka client hands over what waits for each partition in the
        # order it was fetched and stops at the cap, and a partition fetched again goes to the
        # back, so under a full load the same partitions came after the cap every time and
        # were not decided for minutes (docs/reliability.md, "Partitions starved by the
        # fetch"). What waits is bounded by the client's fetch sizes.
        broker_max_poll_records=None,
        web_enabled=False,
        autodiscover=False,
        TableManager=_TableManager,
    )


def faust_credentials(settings: Settings) -> Any:
    """The same connection options in Faust's vocabulary (None for plaintext)."""
    context = ssl_context(settings)
    mechanism = settings.sasl_mechanism
    if mechanism == "AWS_MSK_IAM":
        return OAuthCredentials(
            oauth_cb=client_options(settings)["sasl_oauth_token_provider"], ssl_context=context
        )
    if mechanism == "OAUTHBEARER":
        raise BrokerUnavailable("generic OAUTHBEARER is not supported; use AWS_MSK_IAM or SCRAM")
    if mechanism is not None:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
