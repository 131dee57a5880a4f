"""``make chaos``: kill -9 the processes of a hub again and again under load, then audit the log.

Agents speak Kafka directly (docs/protocol.md): they register, heartbeat, take the tasks
delivered to their inbox (working, then completed), message each other and write memory,
at a steady rate. REST clients submit tasks and write memory through a gateway, each
request with an ``Idempotency-Key``, retried with the same key until answered. An SDK agent
(``bench/chaos_agent.py``) takes a share of the tasks. Meanwhile one of the targets (the
stream worker, the gateway, the SDK agent, a broker of a three-node cluster) is killed with
SIGKILL and started again, in turn. A command counts once it was acknowledged: by the
broker for the agents on Kafka, by a 2xx answer for the REST clients. A process that dies on
its own is started again, as a supervisor would, and counted. Then the log itself is
audited:

- lost: an acknowledged command with no decision event (accepted or rejected);
- duplicated: a command decided twice (two rejections, a rejection and an acceptance, or
  the same kind of event for the same entity twice), or an entity transition (``seq``)
  written twice;
- stuck: a task not finished although its (live) assignee works through its inbox;
- tables: a changelog that is not the fold of its event log.

Heartbeats are part of the load but not audited: most are, by design, decided without an
event (docs/design.md). Ends with one line:
``chaos: <n> commands, <k> kills, <l> lost, <d> duplicated, resume p99 <s> s``.

Longer than the others on purpose: the run's sequence (start, kill each target in turn,
measure the resume, drain, settle, audit) is one procedure; the audit is
:mod:`bench.audit` and the load :mod:`bench.chaos_load`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.audit import audit, worker_settled
from bench.chaos_agent import CARD
from bench.chaos_load import Load, RestLoad
from kolony.broker import EmbeddedKafka, free_port
from kolony.kafka import (
    ensure_topics,
)
from kolony.settings import Settings
from schemas.ids import agent_id_for
from tests.support.kafka_cluster import KafkaCluster
from tests.support.processes import KolonyProcess, wait_health

RESULTS = Path(__file__).parent / "results"
TARGETS = ("worker", "gateway", "agent", "broker")


@dataclass
class ChaosReport:
    commands: int
    unacknowledged: int
    kills: int
    kills_by_target: dict[str, int]
    restarted_by_supervisor: dict[str, int]
    rest: dict[str, Any]
    resume_seconds: list[float]  # every kill's, in order
    resume_by_target: dict[str, list[float]]
    # Times the worker stopped making progress on a partition for 10 s with work waiting
    # while not recovering or rebalancing (its watchdog's commits, or its view's reads):
    # deciding that stalled although nothing was lost (a stalled commit makes every later
    # restart read the log back from further).
    stalls: int
    # Times a gateway found a partition of the event logs not moving with records waiting
    # (its fold re-reads it): it answers 503 for commands decided there meanwhile.
    gateway_stalls: int
    # Times the worker's watchdog found a partition with work waiting from which nothing was
    # fetched for 4 s, and fetched it again (docs/reliability.md, "Stalls").
    refetches: int
    # The warnings behind all three, and those of a worker that waited on its own recovery or
    # a rebalance (a slow resume, which the resume times measure).
    stall_lines: list[str]
    lost: int
    duplicated: int
    audit: dict[str, Any]
    seconds: float

    @property
    def resume_p99(self) -> float:
        """Of the time to resume deciding: after a worker's restart, or a broker's kill."""
        deciding = [s for t in ("worker", "broker") for s in self.resume_by_target.get(t, ())]
        return _p99(deciding)

    def by_target(self) -> str:
        return "; ".join(
            f"{target} p99 {_p99(seconds):.1f} s (max {max(seconds):.1f})"
            for target, seconds in self.resume_by_target.items()
            if seconds
        )

    def line(self) -> str:
        return (
            f"chaos: {self.commands} commands, {self.kills} kills, {self.lost} lost, "
            f"{self.duplicated} duplicated, resume p99 {self.resume_p99:.1f} s"
        )


def _p99(seconds: Sequence[float]) -> float:
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _stall_lines(workdir: Path, settings: Settings, role: str = "worker") -> list[str]:
    """The "no progress" warnings in a role's log, over every run of it: the worker's
    watchdog and view, or a gateway's log follower."""
    log = workdir / f"{settings.topic_prefix}.{role}.log"
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()
    marks = ("no progress on", "nothing fetched from")
    return [f"{role}: {line}" for line in lines if any(mark in line for mark in marks)]


def _stalled(lines: list[str], what: str = "no progress on") -> int:
    """Those of ``lines`` saying ``what`` that are not a worker waiting on its own recovery or
    a rebalance."""
    busy = ("in_recovery=True", "rebalancing=True")
    return sum(what in line and not any(mark in line for mark in busy) for line in lines)


async def run(
    base: Settings,
    workdir: Path,
    *,
    kills: int,
    targets: tuple[str, ...] = ("worker",),
    cluster: KafkaCluster | None = None,
    agents: int = 20,
    rate: float = 40.0,
    between: tuple[float, float] = (2.0, 6.0),
    down: tuple[float, float] = (0.2, 2.0),
    drain: float = 120.0,
    seed: int | None = None,
    worker_name: str | None = None,
    say: Any = print,
) -> ChaosReport:
    """Kill each of ``targets`` in turn, ``kills`` times in all, under load; then audit (see
    the module). Killing brokers needs ``cluster`` (three nodes: one may die)."""
    if unknown := set(targets) - set(TARGETS):
        raise ValueError(f"unknown targets {sorted(unknown)}; choose from {TARGETS}")
    if "broker" in targets and (cluster is None or len(cluster.nodes) < 3):
        raise ValueError("killing a broker needs a cluster of three")
    settings = base.model_copy(
        update={"topic_prefix": f"chaos{uuid.uuid4().hex[:6]}", "port": free_port()}
    )
    await ensure_topics(settings)
    roles = ["worker"] + [role for role in ("gateway", "agent") if role in targets]
    commands = {
        "worker": (["worker", "--log-level", "info"], "kolony"),
        "gateway": (["gateway", "--log-level", "info"], "kolony"),
        "agent": ([], "bench.chaos_agent"),
    }

    def spawn(role: str) -> KolonyProcess:
        args, module = commands[role]
        log = workdir / f"{settings.topic_prefix}.{role}.log"
        chosen = (
            settings.model_copy(update={"worker_name": worker_name})
            if role == "worker"
            else settings
        )
        return KolonyProcess(args, chosen, log, module=module).start()

    began = time.monotonic()
    running = {role: spawn(role) for role in roles}
    dead: set[str] = set()  # killed on purpose, not to be restarted by the supervisor
    restarted: Counter[str] = Counter()

    async def supervise() -> None:
        """What a supervisor (systemd, Kubernetes) does: start a process that died again."""
        while True:
            await asyncio.sleep(0.5)
            for role, process in list(running.items()):
                if role not in dead and process.process is not None and process.process.poll():
                    say(f"the {role} exited on its own ({process.process.returncode}); restarting")
                    restarted[role] += 1
                    running[role] = spawn(role)

    rng = random.Random(seed)  # noqa: S311 - timings, not secrets
    load = Load(settings, agents, rate, rng)
    url = f"http://127.0.0.1:{settings.port}"
    rest = RestLoad(load, url, rate / 4) if "gateway" in running else None
    supervisor = asyncio.create_task(supervise())
    resumes: list[float] = []
    resumes_of: dict[str, list[float]] = {target: [] for target in targets}
    kinds: Counter[str] = Counter()
    try:
        await load.start()
        await _until(lambda: len(load.decided_at) >= agents, 90, "the first worker to decide", load)
        if "agent" in running:
            sdk = agent_id_for(CARD.name, CARD.version)
            await _until(lambda: sdk in load.registered, 90, "the SDK agent to register", load)
            load.sdk_agent = sdk
        if rest is not None:
            await asyncio.to_thread(wait_health, url, 90)
            await rest.start()
        for k in range(kills):
            await asyncio.sleep(rng.uniform(*between))
            target = targets[k % len(targets)]
            kinds[target] += 1
            killed_at = time.monotonic()
            if target == "broker":
                assert cluster is not None
                node = rng.randrange(len(cluster.nodes))
                cluster.stop_node(node, kill=True)
                await asyncio.sleep(rng.uniform(*down))
                cluster.start_node(node)
                restarted_at = time.monotonic()
                await asyncio.to_thread(cluster.wait_ready, 90)
            else:
                dead.add(target)
                running[target].kill()
                await asyncio.sleep(rng.uniform(*down))
                restarted_at = time.monotonic()
                running[target] = spawn(target)
                dead.discard(target)
            resumed = partial(_resumed_after, target, load, rest, killed_at, restarted_at)
            await _until(resumed, 120, f"work to resume after kill {k + 1} ({target})", load)
            # A cluster works on without the killed broker: for it, the time from the kill.
            since = killed_at if target == "broker" else restarted_at
            resumes.append(resumed() - since)
            resumes_of[target].append(round(resumes[-1], 2))
            say(
                f"kill {k + 1}/{kills} ({target}): working again {resumes[-1]:.1f} s after "
                + ("the kill" if target == "broker" else "the restart")
            )
        await load.stop_traffic()
        if rest is not None:
            say("REST clients: finishing their requests in flight")
            await rest.settle(drain)
        say(f"draining: {load.undecided()} of {len(load.acknowledged)} commands undecided")
        with contextlib.suppress(TimeoutError):
            await _until(load.decided, drain, "every acknowledged command to be decided", load)
        with contextlib.suppress(TimeoutError):
            await _until(lambda: _all_finished(load), drain / 2, "every task to finish")
        say(f"tasks: {len(load.tasks & load.finished.keys())} of {len(load.tasks)} finished")
        await load.quiesce()
        with contextlib.suppress(TimeoutError):
            await _until(load.decided, drain, "the last reports to be decided")
        await load.stop()
        if "agent" in running:
            # The SDK agent heartbeats until it stops, and the worker decides a heartbeat
            # now and then: the audit must not read an event log and its changelog while
            # a decision is between the two.
            dead.add("agent")
            await asyncio.to_thread(running["agent"].terminate, 30)
        try:
            await _until_async(partial(worker_settled, settings), drain, "the worker to commit")
        except TimeoutError:
            say(f"the worker did not commit every command within {drain:g} s; auditing anyway")
        say(f"auditing: {load.undecided()} of {len(load.acknowledged)} undecided")
        if load.undecided():
            say(f"undecided, by partition: {load.undecided_where()}")
            sample = sorted(
                (load.sent_to[c], load.offsets[c])
                for c in load.acknowledged
                if c not in load.decided_at
            )[:20]
            say(f"undecided, some offsets: {sample}")
            worker = running["worker"].process
            if worker is not None:
                worker.send_signal(signal.SIGUSR1)  # the worker logs where it waits
                await asyncio.sleep(1)
        result = await audit(
            settings,
            set(load.acknowledged),
            set(load.tasks),
            frozenset(rest.abandoned_keys if rest is not None else ()),
        )
    finally:
        supervisor.cancel()
        with contextlib.suppress(Exception):
            await load.stop()
        if rest is not None:
            with contextlib.suppress(Exception):
                await rest.settle(0)
        for process in running.values():
            with contextlib.suppress(Exception):
                process.terminate(30)
    worker_stalls = _stall_lines(workdir, settings)
    gateway_stalls = _stall_lines(workdir, settings, "gateway")
    return ChaosReport(
        commands=result.commands,
        unacknowledged=load.unacknowledged,
        kills=kills,
        kills_by_target=dict(kinds),
        restarted_by_supervisor=dict(restarted),
        rest=(
            {"answered": len(rest.answered_at), "refused": rest.refused}
            | {"abandoned": rest.abandoned, "retries": rest.retries}
            | {"abandoned_why": rest.abandoned_why}
            if rest is not None
            else {}
        ),
        resume_seconds=[round(r, 2) for r in resumes],
        resume_by_target=resumes_of,
        stalls=_stalled(worker_stalls),
        gateway_stalls=_stalled(gateway_stalls),
        refetches=_stalled(worker_stalls, "nothing fetched from"),
        stall_lines=worker_stalls + gateway_stalls,
        lost=len(result.lost),
        duplicated=len(result.duplicated) + len(result.repeated_transitions),
        audit=asdict(result),
        seconds=round(time.monotonic() - began, 1),
    )


def _resumed_after(
    target: str,
    load: Load,
    rest: RestLoad | None,
    killed_at: float,
    restarted_at: float,
) -> float:
    """When the work the killed process does went on again (0: not yet): a command sent
    after the kill decided by the new worker (or, for a broker, by the cluster without it),
    a REST answer from the new gateway, a task finished by the new SDK agent."""
    if target == "gateway":
        assert rest is not None
        return min((at for at in rest.answered_at if at > restarted_at), default=0.0)
    if target == "agent":
        return min(
            (at for t, at in load.finished.items() if t in load.sdk_tasks and at > restarted_at),
            default=0.0,
        )
    if target == "broker":
        return _resumed(load, killed_at, killed_at)
    return _resumed(load, killed_at, restarted_at)


def _resumed(load: Load, killed_at: float, restarted_at: float) -> float:
    """When the restarted worker first decided a command sent after the kill (0: not yet)."""
    return min(
        (
            load.decided_at[c]
            for c, at in load.acknowledged_at.items()
            if at > killed_at and load.decided_at.get(c, 0.0) > restarted_at
        ),
        default=0.0,
    )


def _all_finished(load: Load) -> bool:
    """Every task finished (its terminal event seen), and every command decided."""
    return load.tasks <= load.finished.keys() and load.decided()


async def _until_async(done: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)  # noqa: ASYNC110 - polling another process's progress


async def _until(done: Any, within: float, what: str, load: Load | None = None) -> None:
    deadline = time.monotonic() + within
    while not done():
        if load is not None:
            load.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)  # noqa: ASYNC110 - polling other processes' progress


async def main(args: argparse.Namespace) -> int:
    # The clients' complaints about brokers and processes killed on purpose are expected.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    workdir = Path(tempfile.mkdtemp(prefix="kolony-chaos-"))
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    bootstrap = os.environ.get("KOLONY_BOOTSTRAP_SERVERS")
    broker: EmbeddedKafka | None = None
    cluster: KafkaCluster | None = None
    if "broker" in targets:
        cluster = KafkaCluster(3, heap_mb=384)
        bootstrap = await asyncio.to_thread(cluster.start)
    elif not bootstrap:
        broker = EmbeddedKafka(workdir / "kafka", 0)
        bootstrap = await asyncio.to_thread(broker.start)
    settings = Settings(
        bootstrap_servers=bootstrap,
        data_dir=workdir / "data",
        session_timeout=6,
        beacon_interval=0.5,
        replication_factor=3 if cluster is not None else 1,
    )
    try:
        report = await run(
            settings,
            workdir,
            kills=args.kills,
            targets=targets,
            cluster=cluster,
            agents=args.agents,
            rate=args.rate,
            seed=args.seed,
            worker_name=args.worker_name or None,
            say=lambda line: print(line, file=sys.stderr),
        )
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        if cluster is not None:
            await asyncio.to_thread(cluster.stop)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    (RESULTS / f"chaos-{stamp}.json").write_text(json.dumps(asdict(report), indent=2))
    print(
        f"resume by target: {report.by_target()}; worker stalled {report.stalls}×, "
        f"fetched again {report.refetches}×, gateway reads {report.gateway_stalls}×"
    )
    print(report.line())
    return 0 if report.lost == 0 and report.duplicated == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="what to kill, in turn: worker, gateway, agent, broker (a three-node cluster)",
    )
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=float, default=40.0, help="commands a second")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's timings")
    parser.add_argument(
        "--worker-name",
        default="chaos-worker",
        help="the worker's KOLONY_WORKER_NAME (static membership; '' for none)",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
