"""The embedded broker: Apache Kafka on a Java from PyPI, its jars fetched once and cached."""

from kolony.broker.jars import KAFKA_VERSION, JarsUnavailable, default_cache_dir
from kolony.broker.server import (
    BrokerError,
    EmbeddedKafka,
    PortTaken,
    free_port,
    free_ports,
    java_executable,
    kafka_uuid,
    port_is_free,
    warm_up,
)

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "EmbeddedKafka",
    "JarsUnavailable",
    "PortTaken",
    "default_cache_dir",
    "free_port",
    "free_ports",
    "java_executable",
    "kafka_uuid",
    "port_is_free",
    "warm_up",
]
