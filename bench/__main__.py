"""``make bench``: Kolony's throughput and latency next to raw Kafka, measured in one run.

Uses the embedded Kafka unless KOLONY_BOOTSTRAP_SERVERS names another. Every Kolony latency
stands beside a floor measured in the same run: the same open loop through bare aiokafka
relays taking as many trips through the broker. Prints a Markdown report and writes
bench/results/<time>.json. ``--only`` runs some phases; ``--soak-minutes 0`` skips the soak.

Longer than the others on purpose: ``make bench`` runs every benchmark in turn and writes
one report, each figure beside its raw-Kafka floor; the benchmarks themselves live in the
other modules of ``bench/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from bench import kolony_bench, messaging_bench, proxy_bench, raw, soak, startup
from kolony.broker import KAFKA_VERSION, EmbeddedKafka, free_port
from kolony.kafka import ensure_topics
from kolony.settings import Settings
from tests.support.processes import KolonyProcess, wait_health

RESULTS = Path(__file__).parent / "results"
HISTORY = (1_000, 5_000, 20_000)  # record batches already in the partition


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"
    )


@contextlib.asynccontextmanager
async def fresh_hub(
    base: Settings, workdir: Path, gateway: bool = False
) -> AsyncIterator[Settings]:
    """A worker (and a gateway) on topics of their own, deleted afterwards: each measure
    starts from empty logs on a broker holding only what it needs, so no phase pays for the
    ones before it."""
    settings = base.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}"})
    await ensure_topics(settings)
    prefix = settings.topic_prefix
    processes = [
        KolonyProcess(
            ["worker", "--log-level", "warning"], settings, workdir / f"{prefix}.worker.log"
        )
    ]
    if gateway:
        processes.append(
            KolonyProcess(
                ["gateway", "--log-level", "warning"], settings, workdir / f"{prefix}.gateway.log"
            )
        )
    try:
        for process in processes:
            process.start()
        if gateway:
            await asyncio.to_thread(wait_health, f"http://127.0.0.1:{settings.port}", 60)
        yield settings
    finally:
        for process in reversed(processes):
            if process.process is not None:
                process.terminate()
        await drop_topics(settings.bootstrap_servers, prefix)


async def drop_topics(bootstrap: str | None, prefix: str) -> None:
    """Delete the topics of a phase (its own prefix, and the workers' group's topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


class Report(dict[str, object]):
    """The run's figures, written to bench/results/ as each arrives: a phase that fails
    late does not lose the ones measured before it."""

    def __setitem__(self, key: str, value: object) -> None:
        super().__setitem__(key, value)
        if "when" in self:
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"{self['when']}.json".replace(":", "-")
            path.write_text(json.dumps(self, indent=2))


PHASES = (
    "raw",
    "heartbeats",
    "messages",
    "broadcast",
    "delegation",
    "tasks",
    "post_agents",
    "proxy",
    "startup",
    "soak",
)


async def main(args: argparse.Namespace) -> dict[str, object]:
    broker = None
    bootstrap = os.environ.get("KOLONY_BOOTSTRAP_SERVERS")
    workdir = Path(tempfile.mkdtemp(prefix="kolony-bench-"))
    if not bootstrap:
        broker = EmbeddedKafka(workdir / "kafka", 0)
        bootstrap = await asyncio.to_thread(broker.start)
    kind = f"embedded Apache Kafka {KAFKA_VERSION}" if broker else f"Kafka at {bootstrap}"
    base = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix="bench",
        partitions=8,
        data_dir=workdir / "data",
        beacon_interval=0.25,
        port=free_port(),
        exactly_once=True,
    )
    at_least_once = base.model_copy(update={"exactly_once": False})
    wanted = set(args.only.split(",")) if args.only else set(PHASES)
    report = Report(when=datetime.now(UTC).isoformat(timespec="seconds"))
    report["machine"] = machine()
    report["broker"] = kind

    def fresh(settings: Settings) -> Settings:
        return settings.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}"})

    try:
        if "raw" in wanted:
            print(f"# raw aiokafka on {kind}", file=sys.stderr)
            produced, consumed = await raw.throughput(bootstrap, args.raw_messages, 8)
            report["raw_produce_msgs_per_s"] = round(produced)
            report["raw_consume_msgs_per_s"] = round(consumed)
            report["raw_round_trip"] = asdict(
                await raw.round_trip(bootstrap, args.samples, 100, base.fetch_max_wait_ms)
            )
            report["raw_tail_by_history"] = [
                {"batches": n, **asdict(latency)}
                for n, latency in await raw.tail_latency_by_history(
                    bootstrap, HISTORY, base.fetch_max_wait_ms
                )
            ]

        if "heartbeats" in wanted:
            for mode, settings in (("exactly_once", base), ("at_least_once", at_least_once)):
                print(f"# heartbeats decided by one worker ({mode})", file=sys.stderr)
                async with fresh_hub(settings, workdir) as hub:
                    decided, published = await kolony_bench.heartbeats_per_second(
                        hub, args.agents, args.heartbeats
                    )
                report[f"heartbeats_{mode}"] = {
                    "decided_per_s": round(decided),
                    "published_per_s": round(published),
                }

        rate, pairs = args.message_rate, args.pairs
        if "messages" in wanted:
            print(f"# 2-hop floor at {rate:g}/s over {pairs} keys", file=sys.stderr)
            relayed = fresh(base)
            floor = await messaging_bench.relay_latency(
                relayed, rate, args.seconds, pairs, workdir, hops=2
            )
            await drop_topics(bootstrap, relayed.topic_prefix)
            report["floor_2_hops"] = {"rate_per_s": rate, "keys": pairs, **asdict(floor)}
            for mode, settings in (("exactly_once", base), ("at_least_once", at_least_once)):
                print(
                    f"# direct messages at {rate:g}/s over {pairs} pairs ({mode})", file=sys.stderr
                )
                async with fresh_hub(settings, workdir) as hub:
                    direct = await messaging_bench.direct_message_latency(
                        hub, rate, args.seconds, pairs
                    )
                report[f"direct_messages_{mode}"] = {
                    "rate_per_s": rate,
                    "pairs": pairs,
                    **asdict(direct),
                    "lost_or_late": int(rate * args.seconds) - direct.count,
                }

        if "broadcast" in wanted:
            print(f"# broadcast to {args.listeners} agents", file=sys.stderr)
            async with fresh_hub(base, workdir) as hub:
                fan_out = await messaging_bench.broadcast_fan_out(hub, args.listeners, 30)
            report["broadcast"] = {"agents": args.listeners, **asdict(fan_out)}

        if "delegation" in wanted:
            task_rate = args.task_rate
            print(f"# 4-hop floor at {task_rate:g}/s", file=sys.stderr)
            relayed = fresh(base)
            floor = await messaging_bench.relay_latency(
                relayed, task_rate, args.seconds, 1_000, workdir, hops=4
            )
            await drop_topics(bootstrap, relayed.topic_prefix)
            report["floor_4_hops"] = {"rate_per_s": task_rate, "keys": 1_000, **asdict(floor)}
            for mode, settings in (("exactly_once", base), ("at_least_once", at_least_once)):
                print(f"# delegation round trip at {task_rate:g}/s ({mode})", file=sys.stderr)
                async with fresh_hub(settings, workdir) as hub:
                    delegation = await kolony_bench.delegation_round_trip(
                        hub, task_rate, args.seconds
                    )
                report[f"delegation_{mode}"] = {
                    "rate_per_s": task_rate,
                    **asdict(delegation),
                    "lost_or_late": int(task_rate * args.seconds) - delegation.count,
                }

        if "tasks" in wanted:
            for mode, settings in (("exactly_once", base), ("at_least_once", at_least_once)):
                print(f"# task commands decided by one worker ({mode})", file=sys.stderr)
                async with fresh_hub(settings, workdir) as hub:
                    decided, published = await kolony_bench.task_commands_per_second(
                        hub, args.tasks
                    )
                report[f"task_commands_{mode}"] = {
                    "decided_per_s": round(decided),
                    "published_per_s": round(published),
                }

        if "post_agents" in wanted:
            print(f"# POST /agents at {args.rate:g}/s for {args.seconds:g} s", file=sys.stderr)
            async with fresh_hub(base, workdir, gateway=True) as hub:
                url = f"http://127.0.0.1:{hub.port}"
                latency, failures = await kolony_bench.register_latency(
                    url, args.rate, args.seconds, 200
                )
            report["post_agents"] = {
                "rate_per_s": args.rate,
                **asdict(latency),
                "failures": failures,
            }

        if "proxy" in wanted:
            print("# app proxy: app__execute next to a direct MCP call", file=sys.stderr)
            async with fresh_hub(base, workdir, gateway=True) as hub:
                url = f"http://127.0.0.1:{hub.port}"
                proxy = await proxy_bench.proxy_overhead(
                    url, workdir, args.proxy_calls, args.seconds, args.proxy_callers
                )
            report["proxy"] = {
                "direct": asdict(proxy.direct),
                "proxied_mcp": asdict(proxy.proxied_mcp),
                "proxied_rest": asdict(proxy.proxied_rest),
                "overhead_p50_ms": round(proxy.overhead_p50_ms, 3),
                "overhead_p99_ms": round(proxy.overhead_p99_ms, 3),
                "direct_calls_per_s": round(proxy.direct_calls_per_s),
                "proxied_calls_per_s": round(proxy.proxied_calls_per_s),
                "callers": proxy.concurrency,
            }

        if "startup" in wanted:
            print(
                f"# kolony up: cold, then restarted with {args.log_events:,} events",
                file=sys.stderr,
            )
            report["startup"] = asdict(
                await startup.cold_start_and_restart(workdir, args.log_events)
            )

        if "soak" in wanted and args.soak_minutes > 0:
            print(f"# soak: {args.soak_minutes:g} minutes", file=sys.stderr)
            async with fresh_hub(base, workdir) as hub:
                minutes = await soak.soak(hub, args.soak_minutes)
            report["soak"] = [{"minute": m.minute, **asdict(m.delegation)} for m in minutes]
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    return report


def _latency(row: dict[str, Any]) -> str:
    return f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, max {row['max_ms']:.2f} ms"


def _ratio(row: dict[str, Any], floor: dict[str, Any]) -> str:
    return (
        f"{row['p50_ms'] / floor['p50_ms']:.2f}× / {row['p99_ms'] / floor['p99_ms']:.2f}×"
        if floor["p50_ms"] and floor["p99_ms"]
        else "-"
    )


def markdown(report: dict[str, Any]) -> str:
    """The report as the table docs/benchmarks.md keeps (phases not run are left out)."""
    rows = [
        f"Run {report['when']} on {report['machine']}; broker: {report['broker']}.",
        "",
        "| measure | result | against its floor (p50 / p99) |",
        "|---|---|---|",
    ]
    if "raw_round_trip" in report:
        rt = report["raw_round_trip"]
        rows += [
            f"| raw aiokafka produce (floor) | {report['raw_produce_msgs_per_s']:,} msg/s | |",
            f"| raw aiokafka consume (floor) | {report['raw_consume_msgs_per_s']:,} msg/s | |",
            f"| raw produce→consume round trip (floor, 1 hop) | {_latency(rt)} | |",
            *(
                f"| raw tail read at 100 msg/s, partition holding {h['batches']:,} record "
                f"batches (floor) | {_latency(h)} ({h['count']} of 200) | |"
                for h in report["raw_tail_by_history"]
            ),
        ]
    for mode in ("exactly_once", "at_least_once"):
        if f"heartbeats_{mode}" in report:
            hb = report[f"heartbeats_{mode}"]
            rows.append(
                f"| heartbeats decided by one worker ({mode.replace('_', '-')}) "
                f"| {hb['decided_per_s']:,} /s | |"
            )
    if "floor_2_hops" in report:
        floor = report["floor_2_hops"]
        rows.append(
            f"| 2-hop floor at {floor['rate_per_s']:g} msg/s over {floor['keys']} keys "
            f"(produce → relay → consume) | {_latency(floor)} ({floor['count']}) | |"
        )
        for mode in ("exactly_once", "at_least_once"):
            direct = report[f"direct_messages_{mode}"]
            rows.append(
                f"| direct message at {direct['rate_per_s']:g} msg/s over {direct['pairs']} "
                f"pairs, send → recipient's inbox ({mode.replace('_', '-')}) | "
                f"{_latency(direct)} ({direct['count']}; {direct['lost_or_late']} late) | "
                f"{_ratio(direct, floor)} |"
            )
    if "broadcast" in report:
        fan_out = report["broadcast"]
        rows.append(
            f"| broadcast to {fan_out['agents']} agents (send → last delivery) | "
            f"{_latency(fan_out)} ({fan_out['count']} broadcasts) | |"
        )
    if "floor_4_hops" in report:
        floor = report["floor_4_hops"]
        rows.append(
            f"| 4-hop floor at {floor['rate_per_s']:g}/s (produce → 3 relays → consume) | "
            f"{_latency(floor)} ({floor['count']}) | |"
        )
        for mode in ("exactly_once", "at_least_once"):
            delegation = report[f"delegation_{mode}"]
            rows.append(
                f"| delegation round trip at {delegation['rate_per_s']:g} tasks/s "
                f"({mode.replace('_', '-')}) | {_latency(delegation)} ({delegation['count']}; "
                f"{delegation['lost_or_late']} late) | {_ratio(delegation, floor)} |"
            )
    for mode in ("exactly_once", "at_least_once"):
        if f"task_commands_{mode}" in report:
            tc = report[f"task_commands_{mode}"]
            rows.append(
                f"| task commands decided by one worker ({mode.replace('_', '-')}) "
                f"| {tc['decided_per_s']:,} /s | |"
            )
    if "post_agents" in report:
        post = report["post_agents"]
        rows.append(
            f"| `POST /agents` at {post['rate_per_s']:g}/s | {_latency(post)} "
            f"({post['count']} ok, {post['failures']} failed) | |"
        )
    if "proxy" in report:
        proxy = report["proxy"]
        rows += [
            f"| direct MCP call to an app (floor) | {_latency(proxy['direct'])} | |",
            f"| `app__execute` through `/bus/mcp` | {_latency(proxy['proxied_mcp'])} "
            f"(overhead p50 {proxy['overhead_p50_ms']:.2f} ms) | |",
            f"| `POST /apps/{{id}}/execute` | {_latency(proxy['proxied_rest'])} | |",
            f"| calls/s with {proxy['callers']} agents calling at once | direct "
            f"{proxy['direct_calls_per_s']:,} /s (floor); through the hub "
            f"{proxy['proxied_calls_per_s']:,} /s | |",
        ]
    if "startup" in report:
        up = report["startup"]
        rows += [
            f"| `kolony up` to `/health` ok, new data directory (jars cached) | "
            f"{up['cold_s']:.2f} s | |",
            f"| `kolony up` restarted with {up['events']:,} events in the log | "
            f"{up['restart_s']:.2f} s | |",
        ]
    if "soak" in report:
        minutes = report["soak"]
        first, last = minutes[0], minutes[-1]
        rows.append(
            f"| soak: 200 heartbeats/s + 20 delegations/s for {len(minutes)} min, "
            f"delegation round trip | first minute {_latency(first)}; last minute "
            f"{_latency(last)} | last / first: {last['p50_ms'] / first['p50_ms']:.2f}× / "
            f"{last['p99_ms'] / first['p99_ms']:.2f}× |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--raw-messages", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=500, help="raw round trips")
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--heartbeats", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=100.0, help="POST /agents per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--task-rate", type=float, default=200.0, help="delegations per second")
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks for the throughput run")
    parser.add_argument("--message-rate", type=float, default=1_000.0, help="messages per second")
    parser.add_argument("--pairs", type=int, default=100, help="sender/recipient pairs")
    parser.add_argument("--listeners", type=int, default=1_000, help="agents a broadcast reaches")
    parser.add_argument("--proxy-calls", type=int, default=2_000, help="sequential app calls")
    parser.add_argument("--proxy-callers", type=int, default=16, help="agents calling at once")
    parser.add_argument("--log-events", type=int, default=100_000, help="events at the restart")
    parser.add_argument("--soak-minutes", type=float, default=30.0, help="0 leaves it out")
    parser.add_argument("--only", help=f"comma-separated phases of {', '.join(PHASES)}")
    parser.add_argument("--report", type=Path, help="print the table of a saved run and stop")
    args = parser.parse_args()
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        sys.exit(0)
    result = asyncio.run(main(args))
    print(markdown(result))
