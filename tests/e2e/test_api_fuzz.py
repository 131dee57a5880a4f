"""The OpenAPI document tells the truth: a schema-based fuzzer (schemathesis) against a live
hub (a worker and a gateway, each its own process, on Kafka) finds no server error, no
status the document does not declare, and no answer that breaks its declared schema.

Bounded for the suite (a few examples per operation); ``KOLONY_FUZZ_EXAMPLES`` runs more.
``GET /events`` is left out: with ``follow`` it streams until the client leaves.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kolony.broker import free_port
from kolony.kafka import ensure_topics
from kolony.settings import Settings
from tests.support.processes import KolonyProcess, wait_health

pytestmark = pytest.mark.kafka

EXAMPLES = int(os.environ.get("KOLONY_FUZZ_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_hub(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    hub_settings = Settings(
        bootstrap_servers=broker,
        topic_prefix=f"fz{uuid.uuid4().hex[:8]}",
        partitions=2,
        data_dir=workdir / "data",
        port=free_port(),
        fetch_max_wait_ms=100,
        session_timeout=6,
        beacon_interval=0.5,
    )
    asyncio.run(ensure_topics(hub_settings))
    processes = [
        KolonyProcess([role, "--log-level", "warning"], hub_settings, workdir / f"{role}.log")
        for role in ("worker", "gateway")
    ]
    for process in processes:
        process.start()
    url = f"http://127.0.0.1:{hub_settings.port}"
    try:
        wait_health(url, 90)
    except TimeoutError:
        logs = "\n".join(p.log()[-2000:] for p in processes)
        pytest.fail(f"the hub did not become healthy:\n{logs}")
    yield url
    for process in reversed(processes):
        process.terminate()


def test_every_answer_is_declared_and_no_input_is_a_server_error(live_hub: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_hub}/openapi.json").exclude(path="/events")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(checks=CHECKS, timeout=30)

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - every operation's failure is reported
            failures.append(f"{operation.label}: {exc}"[:3000])
    assert operations > 30
    assert not failures, "\n\n".join(failures)
