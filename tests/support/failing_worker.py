"""``python -m kolony worker``, but the task decider fails on the task ``explode`` (a test's
stand-in for a write or a decision that cannot succeed; tests/e2e/test_recovery.py)."""

from __future__ import annotations

from typing import Any

from kolony.console import main
from streams.tasks import TaskProcessor

FAILING_TASK = "explode"
_decide = TaskProcessor.decide


def _failing(self: TaskProcessor, command: Any, state: Any, now: Any) -> Any:
    if getattr(command, "task_id", None) == FAILING_TASK:
        raise RuntimeError(f"the decider cannot decide task {FAILING_TASK!r} (on purpose)")
    return _decide(self, command, state, now)


TaskProcessor.decide = _failing  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
