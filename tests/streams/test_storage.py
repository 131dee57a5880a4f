"""Each worker claims a directory of its own for its tables (streams/storage.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kolony.settings import Settings
from streams import storage
from streams.app import build_faust_app


def test_unnamed_workers_take_the_first_free_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = storage.claim(settings)
    second = storage.claim(settings)
    assert (first.path.name, second.path.name) == ("0", "1")
    first.release()
    again = storage.claim(settings)  # a restarted worker finds its tables again
    assert again.path == first.path
    again.release()
    second.release()


def test_a_named_worker_refuses_a_directory_in_use(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, worker_name="alpha")
    held = storage.claim(settings)
    assert held.path == tmp_path / "worker" / "alpha"
    with pytest.raises(storage.StoreInUse, match="named 'alpha' runs already"):
        storage.claim(settings)
    held.release()
    storage.claim(settings).release()


def test_a_killed_worker_leaves_its_directory_free(tmp_path: Path) -> None:
    """The lock dies with its process, however it dies (the OS releases it)."""
    hold = (
        "import sys, time; from pathlib import Path; from kolony.settings import Settings; "
        "from streams import storage; held = storage.claim(Settings(data_dir=Path(sys.argv[1]))); "
        "print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        taken = storage.claim(Settings(data_dir=tmp_path))
        assert taken.path.name == "1"  # "0" is the live child's
        taken.release()
        child.kill()
        child.wait(10)
        assert storage.claim(Settings(data_dir=tmp_path)).path.name == "0"
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


def test_tables_kept_for_another_cluster_are_dropped(tmp_path: Path) -> None:
    """A data directory reused against a new broker: Faust would refuse the tables' stored
    offsets (higher than the new changelogs' end), so they are rebuilt from the changelogs."""
    held = storage.claim(Settings(data_dir=tmp_path))
    tables = held.tables("kolony", "cluster-a")
    (tables / "tasks-0.db").mkdir()
    assert held.tables("kolony", "cluster-a") == tables
    assert (tables / "tasks-0.db").exists()  # the same cluster: kept
    assert held.tables("other-app", "cluster-a") != tables  # another app: apart
    held.tables("kolony", "cluster-b")
    assert not (tables / "tasks-0.db").exists()
    assert (tables / "cluster-id").read_text() == "cluster-b"
    held.release()


@pytest.mark.parametrize(("exactly_once", "scheme"), [(False, "rocksdb"), (True, "memory")])
def test_tables_on_disk_only_without_transactions(
    tmp_path: Path, exactly_once: bool, scheme: str
) -> None:
    """Under transactions Faust writes RocksDB before the transaction commits: an aborted
    one (a killed worker) would leave a state the log does not hold."""
    settings = Settings(
        data_dir=tmp_path, bootstrap_servers="127.0.0.1:1", exactly_once=exactly_once
    )
    assert build_faust_app(settings, tmp_path).conf.store.scheme == scheme
