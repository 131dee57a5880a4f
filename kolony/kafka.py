"""Kafka connection options for every client Kolony makes, and topic provisioning."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from kolony.addresses import bootstrap_servers
from kolony.settings import Settings
from schemas.topics import AGENTS_TABLE, APPS_TABLE, MEMORY_TABLE, MESSAGING_TABLE, TASKS_TABLE

logger = logging.getLogger(__name__)

COMMAND_RETENTION_MS = 7 * 24 * 3600 * 1000
SYSTEM_RETENTION_MS = 3600 * 1000
CHANGELOG_SEGMENT_BYTES = 4 * 1024 * 1024


class BrokerUnavailable(RuntimeError):
    """The configured Kafka cluster cannot be reached or refused a request."""


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """OAUTHBEARER tokens for AWS MSK IAM auth, signed with the ambient AWS credentials."""

    def __init__(self, region: str) -> None:
        self._region = region

    async def token(self) -> str:
        try:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
        except ImportError:
            raise RuntimeError(
                "AWS MSK IAM authentication needs the signer: pip install 'kolony[msk]'"
            ) from None

        token, _expiry_ms = await asyncio.to_thread(
            MSKAuthTokenProvider.generate_auth_token, self._region
        )
        return str(token)


def require_bootstrap(settings: Settings) -> str:
    """The configured Kafka, or the embedded broker's on this machine."""
    return bootstrap_servers(settings)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = str(settings.ssl_cafile) if settings.ssl_cafile else None
    context: ssl.SSLContext = create_ssl_context(cafile=cafile)
    context.check_hostname = settings.ssl_check_hostname
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka producer, consumer or admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": require_bootstrap(settings),
        "security_protocol": settings.security_protocol,
        "ssl_context": ssl_context(settings),
    }
    mechanism = settings.sasl_mechanism
    if mechanism == "AWS_MSK_IAM":
        if not settings.aws_region:
            raise BrokerUnavailable("KOLONY_SASL_MECHANISM=AWS_MSK_IAM needs KOLONY_AWS_REGION")
        options["sasl_mechanism"] = "OAUTHBEARER"
        options["sasl_oauth_token_provider"] = MskIamTokenProvider(settings.aws_region)
    elif mechanism is not None:
        options["sasl_mechanism"] = mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return options


def producer_options(settings: Settings) -> dict[str, Any]:
    """``client_options`` for a producer whose records matter: acknowledged by every
    in-sync replica, and idempotent (a retried send is written once) unless the broker
    cannot do that (``KOLONY_IDEMPOTENCE=false``)."""
    return {**client_options(settings), "acks": "all", "enable_idempotence": settings.idempotence}


def consumer_options(settings: Settings) -> dict[str, Any]:
    """``client_options`` for a consumer: it sees only committed transactions (the worker
    decides inside transactions under exactly-once) and waits ordinary long polls."""
    return {
        **client_options(settings),
        "isolation_level": "read_committed",
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
    }


async def supports_transactions(settings: Settings, within: float = 15.0) -> bool:
    """Whether the cluster runs transactional producers (Apache Kafka and MSK do; some
    Kafka-compatible brokers do not): the one honest test is to start one."""
    producer = AIOKafkaProducer(
        **client_options(settings), transactional_id=f"{settings.topic_prefix}.probe"
    )
    try:
        await asyncio.wait_for(producer.start(), within)
    except (KafkaError, OSError, TimeoutError) as exc:
        logger.info("the broker does not run transactions (%r): at-least-once processing", exc)
        return False
    finally:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await asyncio.wait_for(producer.stop(), within)
    return True


async def start_clients(settings: Settings, *clients: Any) -> None:
    """Start Kafka clients; no broker becomes :class:`BrokerUnavailable` saying what to do."""
    try:
        for client in clients:
            await client.start()
    except (KafkaError, OSError) as exc:
        for client in clients:
            with contextlib.suppress(KafkaError, OSError):
                await client.stop()
        why = "" if isinstance(exc, KafkaConnectionError) else f" ({exc!r})"
        raise BrokerUnavailable(
            f"cannot reach Kafka at {bootstrap_servers(settings)}{why}: is `kolony up` "
            "running? (KOLONY_BOOTSTRAP_SERVERS names another Kafka)"
        ) from None


def desired_topics(settings: Settings) -> list[NewTopic]:
    """Every topic Kolony needs, with partitions, replication and cleanup policy."""
    topics = settings.topics
    n, rf = settings.partitions, settings.replication_factor
    commands = {"cleanup.policy": "delete", "retention.ms": str(COMMAND_RETENTION_MS)}
    events = {"cleanup.policy": "delete", "retention.ms": str(settings.event_retention_ms)}
    # Kafka compacts only closed segments, and a segment closes at 1 GiB or after 7 days by
    # default: a changelog would never shrink, and a worker's restart would replay every
    # write ever made. Small segments keep it near one record per key (plus the last 4 MiB).
    compact = {
        "cleanup.policy": "compact",
        "segment.bytes": str(CHANGELOG_SEGMENT_BYTES),
        "min.cleanable.dirty.ratio": "0.25",
    }
    inbox = {"cleanup.policy": "delete", "retention.ms": str(settings.inbox_retention_ms)}
    logs = (
        (topics.agent_commands, topics.agent_events, AGENTS_TABLE),
        (topics.task_commands, topics.task_events, TASKS_TABLE),
        (topics.message_commands, topics.message_events, MESSAGING_TABLE),
        (topics.memory_commands, topics.memory_events, MEMORY_TABLE),
        (topics.app_commands, topics.app_events, APPS_TABLE),
    )
    return [
        # The workers' (Faust's) leader-election topic, made here so that it is in place
        # before they start rather than created by the first of them.
        NewTopic(f"{topics.app_id}-__assignor-__leader", 1, rf),
        # Each log: its commands, its events, and the changelog of the table folded from them.
        *(
            NewTopic(name, n, rf, topic_configs=configs)
            for command_topic, event_topic, table in logs
            for name, configs in (
                (command_topic, commands),
                (event_topic, events),
                (topics.changelog(table), compact),
            )
        ),
        NewTopic(topics.app_calls, n, rf, topic_configs=events),
        NewTopic(topics.agent_inbox, settings.inbox_partitions, rf, topic_configs=inbox),
        NewTopic(
            topics.system,
            1,
            rf,
            topic_configs={"cleanup.policy": "delete", "retention.ms": str(SYSTEM_RETENTION_MS)},
        ),
    ]


async def ensure_topics(settings: Settings, request_timeout: float = 30.0) -> str | None:
    """Create missing topics; fail clearly when an existing one has the wrong partition count.

    Returns the cluster's id (None: the broker does not say)."""
    admin = AIOKafkaAdminClient(
        **client_options(settings), request_timeout_ms=int(request_timeout * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), request_timeout)
        # The coordinator may have to be made (a new cluster): ask for it meanwhile.
        coordinator = asyncio.ensure_future(_await_coordinator(admin, settings.topics.app_id))
        try:
            wanted = desired_topics(settings)
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t.name not in existing]
            if missing:
                try:
                    await admin.create_topics(missing)
                    logger.info("created topics %s", ", ".join(t.name for t in missing))
                except TopicAlreadyExistsError:
                    logger.debug("topics created concurrently by another process")
            await _check_partitions(admin, wanted)
            try:
                cluster: dict[str, Any] = await admin.describe_cluster()
            except KafkaError:
                cluster = {}
        finally:
            await coordinator
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(
            f"cannot provision topics on {settings.bootstrap_servers}: {exc!r}"
        ) from exc
    finally:
        await admin.close()
    found = cluster.get("cluster_id")
    return str(found) if found else None


async def read_range(
    settings: Settings,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int] | None = None,
    *,
    by_time: bool = False,
) -> list[Any]:
    """The records of some partitions from ``starts`` (offsets, or with ``by_time`` epoch
    milliseconds) to ``ends`` (default: their current ends), read by a consumer of its own."""
    consumer = AIOKafkaConsumer(**consumer_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        if ends is None:
            ends = await consumer.end_offsets(list(starts))
        offsets = dict(starts)
        if by_time:
            found = await consumer.offsets_for_times(starts)
            offsets = {tp: at.offset if (at := found.get(tp)) else ends[tp] for tp in starts}
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)
        return await read_backlog(consumer, ends)
    finally:
        await consumer.stop()


async def read_backlog(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], poll_ms: int = 300
) -> list[Any]:
    """Every record from the assigned partitions' current positions to ``ends``.

    Positions come from the consumer, not from the last record read: a transaction's
    commit marker takes an offset that no record returned has.
    """
    records: list[Any] = []
    while not await reached(consumer, ends):
        batches = await consumer.getmany(*ends, timeout_ms=poll_ms)
        for batch in batches.values():
            records.extend(batch)
    return records


async def reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether the consumer's position is at or past ``ends`` on every partition."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _await_coordinator(admin: AIOKafkaAdminClient, group_id: str, wait: float = 15.0) -> None:
    """Until the broker has a coordinator for the workers' group: on a new cluster the first
    lookup creates Kafka's offsets topic, and the workers' clients would otherwise start by
    retrying (and logging) until it is there."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            await admin.find_coordinator(group_id)
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            return


async def _check_partitions(
    admin: AIOKafkaAdminClient, wanted: list[NewTopic], wait: float = 15.0
) -> None:
    """Fail when a topic exists with another partition count. A just-created topic may
    briefly describe as having no partitions, or partitions without a leader: wait until
    every partition has one (so the clients that start next find them all in place)."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        described = await admin.describe_topics([t.name for t in wanted])
        counts = {d["topic"]: len(d["partitions"]) for d in described if not d["error_code"]}
        led = all(
            p["leader"] >= 0 and not p["error_code"] for d in described for p in d["partitions"]
        )
        done = led and all(counts.get(t.name) for t in wanted)
        if done or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    for topic in wanted:
        have = counts.get(topic.name)
        if not have:
            raise BrokerUnavailable(
                f"topic {topic.name} was created but does not show its partitions"
            )
        if have != topic.num_partitions:
            raise BrokerUnavailable(
                f"topic {topic.name} has {have} partitions but Kolony is configured for "
                f"{topic.num_partitions} (KOLONY_PARTITIONS, or KOLONY_INBOX_PARTITIONS for "
                "the inbox); command, event and changelog topics must be co-partitioned"
            )
