"""Where a worker keeps its tables on disk: a directory of its own under the data directory.

A worker's RocksDB tables remember how far their changelogs were read, so a restarted worker
replays only their tail; but RocksDB lets one process at a time open a database, and Faust
waits (up to 30 s per partition) for a lock another worker holds. So each worker claims a
directory with a file lock the OS releases when the process dies, however it dies:

- a named worker (``KOLONY_WORKER_NAME``) claims ``worker/<name>``, and refuses to start
  while another process holds it (two workers must never share a name);
- an unnamed worker claims the first free of ``worker/0``, ``worker/1``, …: a worker
  restarted on its machine finds its own tables again, and a second one started beside it
  gets a directory of its own.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path

from filelock import FileLock, Timeout

from kolony.settings import Settings

logger = logging.getLogger(__name__)

MAX_UNNAMED = 64  # unnamed workers on one data directory at once


def on_disk(settings: Settings) -> bool:
    """Whether the worker's tables are kept in RocksDB. Not under transactions: there Faust
    writes a state to RocksDB before its transaction commits, and an aborted one (a killed
    worker) would leave it there, its command ids remembered, with nothing in the log; those
    tables stay in memory, rebuilt from the committed changelog (docs/design.md)."""
    return settings.store == "rocksdb" and settings.exactly_once is not True


class StoreInUse(RuntimeError):
    """Another live process holds the directory this worker must use."""


class StoreDir:
    """A claimed directory; :meth:`release` (or the process's death) frees it."""

    def __init__(self, path: Path, lock: FileLock) -> None:
        self.path = path
        self._lock = lock

    def tables(self, app_id: str, cluster_id: str | None) -> Path:
        """Where the tables of ``app_id`` go (Faust's data directory).

        Tables remember offsets of their changelogs: read against another cluster's (a new
        broker, the same data directory), Faust would refuse to start. Tables kept for
        another cluster are dropped and rebuilt from this one's changelogs.
        """
        path = self.path / app_id
        if path.resolve().parent != self.path.resolve():
            raise ValueError(f"{app_id!r} is not a directory name")
        marker = path / "cluster-id"
        if cluster_id is not None and path.exists():
            known = marker.read_text().strip() if marker.exists() else None
            if known != cluster_id:
                logger.warning(
                    "the tables in %s were kept for another Kafka cluster (%s, now %s): "
                    "rebuilding them from the changelogs",
                    path,
                    known,
                    cluster_id,
                )
                shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        if cluster_id is not None:
            marker.write_text(cluster_id)
        return path

    def release(self) -> None:
        self._lock.release(force=True)


def claim(settings: Settings) -> StoreDir:
    root = settings.data_dir / "worker"
    root.mkdir(parents=True, exist_ok=True)
    named = settings.worker_name
    names = [named] if named else (str(i) for i in itertools.count())
    for name in itertools.islice(names, MAX_UNNAMED):
        # Never a "soft" lock (a marker file a killed process leaves behind): only one the
        # OS drops with its process.
        lock = FileLock(root / f"{name}.lock", fallback_to_soft=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if named:
                raise StoreInUse(
                    f"another process holds {root / name}: a worker named {named!r} runs "
                    "already on this data directory (each worker needs a name of its own)"
                ) from None
            continue
        path = root / name
        path.mkdir(exist_ok=True)
        logger.info("the worker keeps its tables in %s", path)
        return StoreDir(path, lock)
    raise StoreInUse(
        f"{MAX_UNNAMED} workers use {root} already; give this one another KOLONY_DATA_DIR"
    )
