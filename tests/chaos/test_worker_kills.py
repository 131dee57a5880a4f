"""The chaos suite in a bounded form: kill -9 the worker under load, then audit the log.

``make chaos`` runs the long form (bench/chaos.py); the figures are in docs/reliability.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.chaos import run
from kolony.settings import Settings

pytestmark = pytest.mark.kafka
logger = logging.getLogger(__name__)


@pytest.mark.timeout(600)
async def test_killing_the_worker_under_load_loses_and_repeats_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(partitions=8, fetch_max_wait_ms=500)
    report = await run(
        settings,
        tmp_path,
        kills=4,
        agents=10,
        rate=40.0,
        between=(1.0, 4.0),
        drain=90.0,
        say=logger.warning,
    )
    audit = report.audit
    assert report.commands > 1_000, report.line()  # the load ran through the kills
    assert audit["lost"] == [], report.line()
    assert audit["duplicated"] == [] and audit["repeated_transitions"] == [], report.line()
    assert audit["stuck_tasks"] == [], report.line()
    assert audit["table_differences"] == [], report.line()
    assert len(report.resume_seconds) == 4
    # Deciding never stalled: a partition's commits stopped once behind a command read back
    # at its head (streams/transport.py, acknowledge_range), and only a restart moved them.
    assert report.stalls == 0, "\n".join([report.line(), *report.stall_lines])
    if report.stall_lines:  # partitions fetched again, or a slow recovery: not stuck
        logger.warning("\n".join(report.stall_lines))
