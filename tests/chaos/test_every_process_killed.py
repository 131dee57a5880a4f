"""The chaos suite's other targets in a bounded form: on a three-broker cluster, under load,
kill -9 in turn the worker, the gateway (its REST clients retry with the same
``Idempotency-Key``), the SDK agent (its next run finishes what it held) and a broker; then
audit the log. ``make chaos`` runs the long form; the figures are in docs/reliability.md.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from bench.chaos import TARGETS, run
from kolony.settings import Settings
from tests.support.kafka_cluster import KafkaCluster

pytestmark = pytest.mark.kafka
logger = logging.getLogger(__name__)


@pytest.mark.timeout(900)
async def test_killing_each_process_and_a_broker_loses_and_repeats_nothing(
    three_brokers: KafkaCluster, tmp_path: Path
) -> None:
    settings = Settings(
        bootstrap_servers=three_brokers.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        replication_factor=3,
        partitions=4,
        data_dir=tmp_path / "data",
        fetch_max_wait_ms=200,
        beacon_interval=0.5,
        session_timeout=6,
        # Fewer than the log's decisions when the gateway is killed (about 1,500), so that
        # the restarted gateway must choose which to remember: the latest written, or its
        # REST clients' retries go unanswered. Still those of the last 25 s or so of load.
        remembered_outcomes=1_000,
    )
    report = await run(
        settings,
        tmp_path,
        kills=len(TARGETS),
        targets=TARGETS,
        cluster=three_brokers,
        agents=8,
        rate=30.0,
        between=(2.0, 4.0),
        drain=120.0,
        seed=11,
        worker_name="chaos-worker",  # static membership (the worker-kill test: dynamic)
        say=logger.warning,
    )
    audit = report.audit
    assert report.kills_by_target == dict.fromkeys(TARGETS, 1), report.kills_by_target
    assert report.rest["answered"] > 50 and report.rest["abandoned"] == 0, report.rest
    assert audit["lost"] == [], report.line()
    assert audit["duplicated"] == [] and audit["repeated_transitions"] == [], report.line()
    assert audit["stuck_tasks"] == [], report.line()
    assert audit["table_differences"] == [], report.line()
    assert len(report.resume_seconds) == len(TARGETS)
