"""Connection options for every security setup, and the topics Kolony provisions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from kolony.kafka import (
    BrokerUnavailable,
    MskIamTokenProvider,
    client_options,
    ensure_topics,
    supports_transactions,
)
from kolony.settings import Settings


def test_plaintext_by_default() -> None:
    options = client_options(Settings(bootstrap_servers="k:9092"))
    assert options["security_protocol"] == "PLAINTEXT" and options["ssl_context"] is None
    assert "sasl_mechanism" not in options


def test_msk_iam_uses_oauthbearer_with_signed_tokens() -> None:
    settings = Settings(
        bootstrap_servers="b-1:9098",
        security_protocol="SASL_SSL",
        sasl_mechanism="AWS_MSK_IAM",
        aws_region="ap-south-1",
    )
    options = client_options(settings)
    assert options["sasl_mechanism"] == "OAUTHBEARER"
    assert isinstance(options["sasl_oauth_token_provider"], MskIamTokenProvider)
    assert options["ssl_context"] is not None


def test_msk_iam_needs_a_region() -> None:
    settings = Settings(
        bootstrap_servers="b-1:9098", security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM"
    )
    with pytest.raises(BrokerUnavailable, match="KOLONY_AWS_REGION"):
        client_options(settings)


def test_scram_passes_username_and_secret() -> None:
    settings = Settings(
        bootstrap_servers="k:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="kolony",
        sasl_password=SecretStr("s3cret"),
    )
    options = client_options(settings)
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("kolony", "s3cret")
    assert "s3cret" not in repr(settings)


def test_token_provider_signs_with_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    token = asyncio.run(MskIamTokenProvider("eu-west-1").token())
    assert token and "." not in token[:5]  # a base64url-encoded presigned URL


@pytest.mark.kafka
async def test_topics_have_partitions_and_cleanup_policies(kafka_broker: str) -> None:
    settings = Settings(
        bootstrap_servers=kafka_broker, topic_prefix=f"cfg{uuid.uuid4().hex[:6]}", partitions=3
    )
    await ensure_topics(settings)
    await ensure_topics(settings)  # idempotent
    topics = settings.topics
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker)
    await admin.start()
    try:
        names = [
            topics.agent_commands,
            topics.agent_events,
            topics.changelog("agents"),
            topics.system,
        ]
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        configs: dict[str, dict[str, Any]] = {}
        for response in responses:
            for _code, _msg, _type, name, entries in response.resources:
                configs[name] = {entry[0]: entry[1] for entry in entries}
        changelog = configs[topics.changelog("agents")]
        assert changelog["cleanup.policy"] == "compact"
        assert changelog["segment.bytes"] == str(4 * 1024 * 1024)  # closed segments compact
        assert configs[topics.agent_events]["retention.ms"] == "-1"
        assert configs[topics.agent_commands]["cleanup.policy"] == "delete"
        described = await admin.describe_topics(names[:3])
        assert {len(d["partitions"]) for d in described} == {3}
    finally:
        await admin.close()
    wrong = settings.model_copy(update={"partitions": 5})
    with pytest.raises(BrokerUnavailable, match="co-partitioned"):
        await ensure_topics(wrong)


async def test_the_embedded_kafka_runs_transactions(kafka_broker: str) -> None:
    """KOLONY_EXACTLY_ONCE=auto turns exactly-once processing on where this is true."""
    settings = Settings(bootstrap_servers=kafka_broker, topic_prefix=f"tx{uuid.uuid4().hex[:6]}")
    assert await supports_transactions(settings)
    assert not await supports_transactions(
        Settings(bootstrap_servers="127.0.0.1:1", topic_prefix="nowhere"), within=2
    )
