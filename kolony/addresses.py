"""Where the hub is: one answer for every client on this machine.

Clients that talk to a gateway use ``KOLONY_URL`` (``--url``); clients that talk to Kafka
use ``KOLONY_BOOTSTRAP_SERVERS``. Unset, both default to what ``kolony up`` is serving
from this data directory (it writes ``hub.json`` there while it runs), and otherwise to
its default ports on this machine. ``kolony up`` never moves a port silently, so the
defaults are right unless someone chose other ports.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kolony.settings import Settings

HUB_FILE = "hub.json"


@dataclass(frozen=True)
class HubAddresses:
    """What a running ``kolony up`` serves."""

    url: str
    bootstrap_servers: str
    pid: int
    embedded_broker: bool


def write(settings: Settings, addresses: HubAddresses) -> Path:
    path = settings.data_dir / HUB_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(addresses), indent=2) + "\n")
    os.replace(temporary, path)
    return path


def clear(settings: Settings) -> None:
    """Forget the addresses, if they are this process's."""
    found = read(settings)
    if found is not None and found.pid == os.getpid():
        (settings.data_dir / HUB_FILE).unlink(missing_ok=True)


def read(settings: Settings) -> HubAddresses | None:
    """The addresses of the ``kolony up`` serving this data directory, if it is running."""
    path = settings.data_dir / HUB_FILE
    try:
        found = HubAddresses(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return found if _alive(found.pid) else None


def bootstrap_servers(settings: Settings) -> str:
    """``KOLONY_BOOTSTRAP_SERVERS``, else the running hub's Kafka, else this machine's."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    running = read(settings)
    return running.bootstrap_servers if running else f"127.0.0.1:{settings.kafka_port or 9092}"


def gateway_url(settings: Settings, url: str | None = None) -> str:
    """``url`` (``KOLONY_URL``), else the running hub's gateway, else this machine's."""
    if url:
        return url.rstrip("/")
    running = read(settings)
    return running.url if running else local_url(settings)


def local_url(settings: Settings) -> str:
    """The gateway a server configured by ``settings`` serves, as reached from this machine."""
    wildcard = settings.host in ("0.0.0.0", "::", "")  # noqa: S104 - compared, not bound
    return f"http://{'127.0.0.1' if wildcard else settings.host}:{settings.port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # someone else's process, but running
    except (ProcessLookupError, OverflowError):
        return False
    return True
