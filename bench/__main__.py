"""``make bench``: Kolony's throughput and latency next to raw Kafka, measured in one run.

Uses the embedded broker unless KOLONY_BOOTSTRAP_SERVERS names another Kafka.
Prints a Markdown report and writes bench/results/<time>.json.
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
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import kolony_bench, messaging_bench, proxy_bench, raw
from kolony.broker import KAFKA_VERSION, EmbeddedKafka, free_port
from kolony.kafka import ensure_topics
from kolony.settings import Settings
from tests.support.processes import KolonyProcess

RESULTS = Path(__file__).parent / "results"
HISTORY = (1_000, 3_000, 5_000, 8_000)  # record batches already in the partition


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


def wait_health(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}/health not ready in {timeout:g} s")


@contextlib.asynccontextmanager
async def fresh_hub(
    base: Settings, workdir: Path, gateway: bool = False
) -> AsyncIterator[Settings]:
    """A worker (and a gateway) on topics of their own: each measure starts from empty logs.

    The embedded broker's fetches cost time in proportion to the record batches a partition
    already holds (see ``raw.tail_latency_by_history``); sharing topics between phases
    would make each phase pay for the ones before it.
    """
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
    )
    fetch_wait = base.fetch_max_wait_ms
    report: dict[str, object] = {
        "machine": machine(),
        "broker": kind,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        print(f"# raw aiokafka on {kind}", file=sys.stderr)
        produced, consumed = await raw.throughput(bootstrap, args.raw_messages, 8)
        report["raw_produce_msgs_per_s"] = round(produced)
        report["raw_consume_msgs_per_s"] = round(consumed)
        report["raw_round_trip"] = asdict(
            await raw.round_trip(bootstrap, args.samples, 100, fetch_wait)
        )
        report["raw_tail_by_history"] = [
            {"batches": n, **asdict(latency)}
            for n, latency in await raw.tail_latency_by_history(bootstrap, HISTORY, fetch_wait)
        ]

        print("# heartbeats decided by one worker", file=sys.stderr)
        async with fresh_hub(base, workdir) as settings:
            decided, published = await kolony_bench.heartbeats_per_second(
                settings, args.agents, args.heartbeats
            )
        report["heartbeats_decided_per_s"] = round(decided)
        report["heartbeats_published_per_s"] = round(published)

        rate, pairs = args.message_rate, args.pairs
        print(f"# raw relay at {rate:g}/s over {pairs} pairs", file=sys.stderr)
        relay = await messaging_bench.relay_latency(
            base.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}"}),
            rate,
            args.seconds,
            pairs,
            workdir,
        )
        report["relay"] = {"rate_per_s": rate, "pairs": pairs, **asdict(relay)}

        print(f"# direct messages at {rate:g}/s over {pairs} pairs", file=sys.stderr)
        async with fresh_hub(base, workdir) as settings:
            direct = await messaging_bench.direct_message_latency(
                settings, rate, args.seconds, pairs
            )
        report["direct_messages"] = {
            "rate_per_s": rate,
            "pairs": pairs,
            **asdict(direct),
            "lost_or_late": int(rate * args.seconds) - direct.count,
        }

        print(f"# broadcast to {args.listeners} agents", file=sys.stderr)
        async with fresh_hub(base, workdir) as settings:
            fan_out = await messaging_bench.broadcast_fan_out(settings, args.listeners, 30)
        report["broadcast"] = {"agents": args.listeners, **asdict(fan_out)}

        print(f"# delegation round trip at {args.task_rate:g}/s", file=sys.stderr)
        async with fresh_hub(base, workdir) as settings:
            delegation = await kolony_bench.delegation_round_trip(
                settings, args.task_rate, args.seconds
            )
        sent = int(args.task_rate * args.seconds)
        report["delegation"] = {
            "rate_per_s": args.task_rate,
            **asdict(delegation),
            "lost_or_late": sent - delegation.count,
        }

        print("# task commands decided by one worker", file=sys.stderr)
        async with fresh_hub(base, workdir) as settings:
            decided, published = await kolony_bench.task_commands_per_second(settings, args.tasks)
        report["task_commands_decided_per_s"] = round(decided)
        report["task_commands_published_per_s"] = round(published)

        print(f"# POST /agents at {args.rate:g}/s for {args.seconds:g} s", file=sys.stderr)
        async with fresh_hub(base, workdir, gateway=True) as settings:
            url = f"http://127.0.0.1:{settings.port}"
            latency, failures = await kolony_bench.register_latency(
                url, args.rate, args.seconds, 200
            )
        report["post_agents"] = {"rate_per_s": args.rate, **asdict(latency), "failures": failures}

        print("# app proxy: app__execute next to a direct MCP call", file=sys.stderr)
        async with fresh_hub(base, workdir, gateway=True) as settings:
            url = f"http://127.0.0.1:{settings.port}"
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
    finally:
        if broker is not None:
            broker.stop()
    return report


def markdown(report: dict[str, object]) -> str:
    rt = report["raw_round_trip"]
    post = report["post_agents"]
    delegation = report["delegation"]
    direct = report["direct_messages"]
    fan_out = report["broadcast"]
    relay = report["relay"]
    history = report["raw_tail_by_history"]
    proxy = report["proxy"]
    assert isinstance(proxy, dict)
    assert isinstance(rt, dict) and isinstance(post, dict) and isinstance(delegation, dict)
    assert isinstance(direct, dict) and isinstance(fan_out, dict) and isinstance(relay, dict)
    assert isinstance(history, list)
    return "\n".join(
        [
            f"Run {report['when']} on {report['machine']}; broker: {report['broker']}.",
            "",
            "| measure | result |",
            "|---|---|",
            f"| raw aiokafka produce (baseline) | {report['raw_produce_msgs_per_s']:,} msg/s |",
            f"| raw aiokafka consume (baseline) | {report['raw_consume_msgs_per_s']:,} msg/s |",
            f"| raw produce→consume round trip (baseline) | p50 {rt['p50_ms']:.2f} ms, "
            f"p99 {rt['p99_ms']:.2f} ms |",
            f"| heartbeats decided by one worker | {report['heartbeats_decided_per_s']:,} /s |",
            f"| `POST /agents` at {post['rate_per_s']:g}/s | p50 {post['p50_ms']:.2f} ms, "
            f"p99 {post['p99_ms']:.2f} ms, max {post['max_ms']:.2f} ms ({post['count']} ok, "
            f"{post['failures']} failed) |",
            f"| delegation round trip at {delegation['rate_per_s']:g} tasks/s | "
            f"p50 {delegation['p50_ms']:.2f} ms, p99 {delegation['p99_ms']:.2f} ms, "
            f"max {delegation['max_ms']:.2f} ms ({delegation['count']} tasks; "
            f"{delegation['lost_or_late']} not back within 3 min) |",
            f"| task commands decided by one worker | "
            f"{report['task_commands_decided_per_s']:,} /s |",
            f"| raw relay at {relay['rate_per_s']:g} msg/s over {relay['pairs']} keys "
            f"(baseline: produce → relay process → consume) | p50 {relay['p50_ms']:.2f} ms, "
            f"p99 {relay['p99_ms']:.2f} ms, max {relay['max_ms']:.2f} ms "
            f"({relay['count']} records) |",
            f"| direct message at {direct['rate_per_s']:g} msg/s over {direct['pairs']} pairs "
            f"(send → recipient's inbox) | "
            f"p50 {direct['p50_ms']:.2f} ms, p99 {direct['p99_ms']:.2f} ms, "
            f"max {direct['max_ms']:.2f} ms ({direct['count']} messages; "
            f"{direct['lost_or_late']} not delivered within 2 min) |",
            f"| broadcast to {fan_out['agents']} agents (send → last delivery) | "
            f"p50 {fan_out['p50_ms']:.2f} ms, p99 {fan_out['p99_ms']:.2f} ms, "
            f"max {fan_out['max_ms']:.2f} ms ({fan_out['count']} broadcasts) |",
            f"| direct MCP call to an app (baseline) | p50 {proxy['direct']['p50_ms']:.2f} ms, "
            f"p99 {proxy['direct']['p99_ms']:.2f} ms ({proxy['direct']['count']} calls) |",
            f"| `app__execute` through `/bus/mcp` | p50 {proxy['proxied_mcp']['p50_ms']:.2f} ms, "
            f"p99 {proxy['proxied_mcp']['p99_ms']:.2f} ms (overhead p50 "
            f"{proxy['overhead_p50_ms']:.2f} ms, p99 {proxy['overhead_p99_ms']:.2f} ms) |",
            f"| `POST /apps/{{id}}/execute` | p50 {proxy['proxied_rest']['p50_ms']:.2f} ms, "
            f"p99 {proxy['proxied_rest']['p99_ms']:.2f} ms |",
            f"| calls/s with {proxy['callers']} agents calling at once | direct "
            f"{proxy['direct_calls_per_s']:,} /s (baseline); through the hub "
            f"{proxy['proxied_calls_per_s']:,} /s |",
            *(
                f"| raw tail read at 100 msg/s, partition holding {h['batches']:,} record batches "
                f"(baseline) | p50 {h['p50_ms']:.2f} ms, p99 {h['p99_ms']:.2f} ms "
                f"({h['count']} of 200 within 5 s) |"
                for h in history
            ),
        ]
    )


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
    result = asyncio.run(main(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{result['when']}.json".replace(":", "-")).write_text(json.dumps(result, indent=2))
    print(markdown(result))
