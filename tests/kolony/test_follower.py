"""The cyclic collector is paused while followers fold their backlog (kolony/follower.py)."""

from __future__ import annotations

import gc

from kolony.follower import _CyclicGC


def test_paused_until_the_last_follower_caught_up() -> None:
    collector = _CyclicGC()
    assert gc.isenabled()
    try:
        collector.hold()
        collector.hold()  # two followers folding at once (a hub and a worker's view)
        assert not gc.isenabled()
        collector.release()
        assert not gc.isenabled()
        collector.release()
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    collector = _CyclicGC()
    gc.disable()
    try:
        collector.hold()
        collector.release()
        assert not gc.isenabled()
    finally:
        gc.enable()
