"""``kolony up`` and ``kolony reset``: a hub on this machine, its data directory, its addresses."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import time

import click

import kolony
from kolony import addresses
from kolony.broker import KAFKA_VERSION, EmbeddedKafka, default_cache_dir, port_is_free
from kolony.settings import Settings


class LocalHub:
    """What ``kolony up`` starts around the runtime: the embedded Kafka and the addresses
    file that tells this machine's clients where everything is."""

    def __init__(self, settings: Settings, *, fresh: bool = False) -> None:
        self.settings = settings
        self.fresh = fresh
        self.broker: EmbeddedKafka | None = None

    def prepare(self) -> Settings:
        """Everything that can fail before the runtime starts; returns the settings to run."""
        settings = self.settings
        if settings.worker_name is None:
            # One hub per data directory: its worker keeps one name, so that after a crash
            # the restarted hub takes its partitions back at once (static membership).
            place = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:12]
            settings = settings.model_copy(update={"worker_name": f"kolony-up-{place}"})
            self.settings = settings
        if self.fresh:
            reset_data(settings, ask=False)
        if not port_is_free(settings.port, settings.host):
            raise click.ClickException(
                f"port {settings.port} is taken, so the gateway cannot listen on "
                f"{settings.host}:{settings.port}; stop what uses it (another `kolony up`?), "
                "or choose another port with --port or KOLONY_PORT"
            )
        if settings.bootstrap_servers:
            return settings
        cache = settings.cache_dir or default_cache_dir()
        self.broker = EmbeddedKafka(
            settings.data_dir / "kafka",
            settings.kafka_port,
            heap_mb=settings.kafka_heap_mb,
            cache_dir=cache,
            repository=settings.maven_repository,
            java=settings.java,
            progress=_Progress(f"fetching Apache Kafka {KAFKA_VERSION} into {cache} (once)"),
        )
        new = not self.broker.formatted
        click.echo(
            f"starting Apache Kafka {KAFKA_VERSION}"
            + (f" (a new hub, kept in {settings.data_dir})" if new else "")
            + " ...",
            err=True,
        )
        self.broker.start(wait=False)
        # While Kafka starts (about a second), load what the worker and the gateway need.
        for module in ("streams.app", "services.gateway.app"):
            importlib.import_module(module)
        self.broker.wait_until_listening(60)  # the port is final once it listens
        bootstrap = self.broker.bootstrap_servers
        self.settings = settings.model_copy(update={"bootstrap_servers": bootstrap})
        return self.settings

    def ready(self, settings: Settings) -> None:
        """The runtime is serving: say where everything is, and write it down for clients."""
        url = addresses.local_url(settings)
        addresses.write(
            settings,
            addresses.HubAddresses(
                url=url,
                bootstrap_servers=str(settings.bootstrap_servers),
                pid=os.getpid(),
                embedded_broker=self.broker is not None,
            ),
        )
        if self.broker is not None:
            kafka = f"Apache Kafka {KAFKA_VERSION}, embedded; its log: {self.broker.log_path}"
        else:
            kafka = "external Kafka"
        guarantee = "exactly-once" if settings.exactly_once is True else "at-least-once"
        click.echo(
            f"\nKolony {kolony.__version__} is up\n"
            f"  gateway  {url}   (API docs {url}/docs, health {url}/health)\n"
            f"  kafka    {settings.bootstrap_servers}   ({kafka})\n"
            f"  worker   in this process ({guarantee} processing; more: kolony worker)\n"
            f"  topics   {settings.topic_prefix}.{{agents,tasks,messages,memory,apps}}"
            f".{{commands,events}}, {settings.topics.agent_inbox}\n"
            f"  sockets  {url.replace('http', 'ws', 1)}/ws"
            "   (the WebSocket protocol for any language)\n"
            f"  mcp      {url}/mcp and {url}/bus/mcp   (streamable HTTP; stdio: kolony mcp)\n"
            f"  data     {settings.data_dir}   (kept across restarts; "
            "kolony up --fresh starts over)\n"
            f"Try:  curl -s -X POST {url}/agents -H 'content-type: application/json' "
            '-d \'{"name":"echo","version":"1.0.0"}\'\n'
            "Press Ctrl-C to stop.\n"
        )

    def close(self) -> None:
        addresses.clear(self.settings)
        if self.broker is not None:
            self.broker.stop()


def reset_data(settings: Settings, *, ask: bool) -> None:
    """Delete the data directory after saying what it holds (and asking, if ``ask``)."""
    data = settings.data_dir
    if not data.exists():
        click.echo(f"nothing to delete: {data} does not exist", err=True)
        return
    running = addresses.read(settings)
    if running is not None:
        raise click.ClickException(
            f"a hub is running from {data} (process {running.pid}); stop it first"
        )
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    what = (
        f"{data.resolve()} ({size / 1e6:.1f} MB): the embedded Kafka's log (every agent, "
        "task, message, memory key and app) and the worker's state"
    )
    if ask:
        click.confirm(f"This deletes {what}. Continue?", abort=True, err=True)
    else:
        click.echo(f"deleting {what}", err=True)
    shutil.rmtree(data)


class _Progress:
    """One line on stderr for a download: rewritten in place on a terminal, else a line
    at each quarter."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self._shown = -1.0
        self._quarter = -1

    def __call__(self, done: int, total: int) -> None:
        line = f"{self.what}: {done / 1e6:.1f} of {total / 1e6:.1f} MB"
        if self.tty:
            now = time.monotonic()
            if now - self._shown > 0.1 or done >= total:
                self._shown = now
                click.echo(f"\r{line}", nl=done >= total, err=True)
            return
        quarter = 4 * done // max(total, 1)
        if quarter != self._quarter:
            self._quarter = quarter
            click.echo(line, err=True)
