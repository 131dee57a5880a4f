"""Run Kolony's processes in one event loop: stream worker, gateway, or both (`kolony up`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from kolony.kafka import ensure_topics, supports_transactions
from kolony.settings import Settings

logger = logging.getLogger(__name__)


class GatewayFailed(RuntimeError):
    """The gateway could not start (its port taken, say)."""


class WorkerCrashed(RuntimeError):
    """A stream processor failed: the process exits non-zero for its supervisor to restart
    it, and the replacement resumes from the committed offsets and the changelog."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def run(
    settings: Settings,
    *,
    worker: bool = True,
    gateway: bool = True,
    on_ready: Callable[[Settings], None] | None = None,
    stop: asyncio.Event | None = None,
    exit_if_stuck: bool = False,
) -> None:
    """Start what is asked for, call ``on_ready``, and stop it all on SIGINT/SIGTERM or ``stop``.

    With ``exit_if_stuck`` (the CLI's processes) a stop that takes longer than the settings'
    ``stop_timeout`` and 10 s more ends the process: a worker whose brokers are all gone
    cannot commit, and would otherwise wait for them forever."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline: threading.Timer | None = None

    def on_signal(*_: Any) -> None:
        # Runs outside the event loop (a plain signal handler), so the deadline starts even
        # when the loop itself is what is stuck.
        nonlocal deadline
        if exit_if_stuck and deadline is None:
            deadline = _exit_if_stuck(settings.stop_timeout + 10)
        loop.call_soon_threadsafe(stop.set)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            if exit_if_stuck:
                signal.signal(sig, on_signal)
            else:
                loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGUSR1, _log_tasks)
    roles = [name for name, on in (("worker", worker), ("gateway", gateway)) if on]
    logger.info("starting the %s (process %d)", " and the ".join(roles), os.getpid())
    cluster_id = await ensure_topics(settings)
    if worker and settings.exactly_once == "auto":
        settings = settings.model_copy(
            update={"exactly_once": await supports_transactions(settings)}
        )
    crashed: list[BaseException] = []
    async with contextlib.AsyncExitStack() as stack:
        # Both start at once: the gateway folds the log while the worker joins its group
        # and recovers its tables. They stop in the reverse order (the gateway first).
        starting: list[contextlib.AbstractAsyncContextManager[Any]] = []
        if worker:
            starting.append(_worker(settings, cluster_id))
        if gateway:
            starting.append(_gateway(settings))
        started = await _enter_together(stack, starting)
        if worker:
            kolony_worker = started[0]
            watcher = asyncio.create_task(_watch(kolony_worker.app, stop, crashed))
            stack.callback(watcher.cancel)
        if on_ready is not None:
            on_ready(settings)
        await stop.wait()
        logger.info("stopping")
        if exit_if_stuck and deadline is None:  # stopped by a crash, not a signal
            deadline = _exit_if_stuck(settings.stop_timeout + 10)
    if deadline is not None:
        deadline.cancel()  # stopped in time
    for sig, handler in previous.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, TypeError):
            if exit_if_stuck:
                signal.signal(sig, handler)
            else:
                loop.remove_signal_handler(sig)
    if crashed:
        raise WorkerCrashed(f"the stream worker crashed: {crashed[0]!r}") from crashed[0]


async def _enter_together(
    stack: contextlib.AsyncExitStack, managers: list[contextlib.AbstractAsyncContextManager[Any]]
) -> list[Any]:
    """Enter ``managers`` concurrently; ``stack`` exits them in reverse order of the list.
    If one fails to start, those that started are exited and its error raised."""
    own = [contextlib.AsyncExitStack() for _ in managers]
    for each in own:  # before starting: a cancelled start still stops what it started
        stack.push_async_callback(each.aclose)
    results = await asyncio.gather(
        *(each.enter_async_context(manager) for each, manager in zip(own, managers, strict=True)),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise failed[0]
    return results


def _log_tasks() -> None:
    """SIGUSR1: log where every task of this process is waiting (to see what is stuck)."""
    for task in asyncio.all_tasks():
        chain: list[str] = []
        awaited: Any = task.get_coro()
        while awaited is not None and len(chain) < 20:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        logger.warning("task %s: %s", task.get_name(), " -> ".join(chain) or "(done)")


async def _watch(app: Any, stop: asyncio.Event, crashed: list[BaseException]) -> None:
    """Stop everything when the Faust app crashes (a crashed app otherwise idles forever)."""
    while not app.crashed:  # noqa: ASYNC110 - mode exposes no public event to await
        await asyncio.sleep(0.5)
    crashed.append(app.crash_reason or RuntimeError("unknown reason"))
    logger.error("the stream worker crashed (%r); stopping", crashed[0])
    stop.set()


def _exit_if_stuck(within: float) -> threading.Timer:
    """End the process in ``within`` seconds unless it ended by then (a daemon thread: the
    event loop may be the thing that is stuck)."""

    def give_up() -> None:
        logger.error(
            "did not stop within %g s (is Kafka reachable?); exiting now. What was not "
            "committed is decided again by the next worker: nothing is lost",
            within,
        )
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(within, give_up)
    timer.daemon = True
    timer.start()
    return timer


@contextlib.asynccontextmanager
async def _worker(settings: Settings, cluster_id: str | None) -> Any:
    from faust.contrib.asgi import faust_app_running

    from streams.app import KolonyWorker

    kolony_worker = KolonyWorker(settings, cluster_id)
    try:
        async with faust_app_running(kolony_worker.app, stop_timeout=settings.stop_timeout):
            yield kolony_worker
    finally:
        kolony_worker.store.release()


@contextlib.asynccontextmanager
async def _gateway(settings: Settings) -> Any:
    from services.gateway.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name="kolony-gateway")
    while not server.started:
        if task.done():
            # uvicorn logs why it could not start and exits (a taken port, say).
            with contextlib.suppress(SystemExit):
                task.result()
            raise GatewayFailed(
                f"the gateway could not start on {settings.host}:{settings.port} "
                "(is the port taken? --port or KOLONY_PORT chooses another)"
            )
        await asyncio.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        await task
