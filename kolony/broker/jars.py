"""Apache Kafka's jars: a pinned, checksummed list fetched once from Maven Central into a cache.

Maven's standard layout (``<group as path>/<artifact>/<version>/<artifact>-<version>.jar``)
needs nothing but HTTP, so neither Maven nor a Java build is involved. Each jar is checked
against its SHA-256 from ``kafka-<version>.jars`` before it is put in the cache; a jar in
the cache is trusted (it was checked when it arrived).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

KAFKA_VERSION = "4.1.1"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
_MANIFEST = Path(__file__).with_name(f"kafka-{KAFKA_VERSION}.jars")

Progress = Callable[[int, int], None]
"""Called with the bytes fetched so far and the bytes to fetch in all."""


class JarsUnavailable(RuntimeError):
    """Kafka's jars could not be fetched or did not match their digests."""


@dataclass(frozen=True)
class Jar:
    coordinates: str  # group:artifact:version
    sha256: str
    size: int

    @property
    def path(self) -> str:
        """Its path in a Maven repository."""
        group, artifact, version = self.coordinates.split(":")
        return f"{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"


def manifest() -> list[Jar]:
    jars = []
    for line in _MANIFEST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            coordinates, sha256, size = line.split()
            jars.append(Jar(coordinates, sha256, int(size)))
    return jars


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/kolony`` (``~/.cache/kolony``): shared by every hub and test run."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kolony"


def cached(cache_dir: Path) -> bool:
    return all((cache_dir / "maven" / jar.path).is_file() for jar in manifest())


def classpath(
    cache_dir: Path, repository: str = MAVEN_CENTRAL, progress: Progress | None = None
) -> list[Path]:
    """The jars' paths in the cache, fetching the missing ones first."""
    jars = manifest()
    root = cache_dir / "maven"
    missing = [jar for jar in jars if not (root / jar.path).is_file()]
    if missing:
        _fetch(missing, root, repository.rstrip("/"), progress)
    return [root / jar.path for jar in jars]


def _fetch(jars: list[Jar], root: Path, repository: str, progress: Progress | None) -> None:
    total = sum(jar.size for jar in jars)
    done = 0
    try:
        with httpx.Client(timeout=httpx.Timeout(30.0), follow_redirects=True) as client:
            for jar in jars:
                done = _fetch_one(client, jar, root, repository, done, total, progress)
    except httpx.HTTPError as exc:
        raise JarsUnavailable(
            f"cannot download Apache Kafka {KAFKA_VERSION} from {repository} ({exc}); check "
            "the network, or point KOLONY_MAVEN_REPOSITORY at a Maven mirror you can reach"
        ) from None


def _fetch_one(
    client: httpx.Client,
    jar: Jar,
    root: Path,
    repository: str,
    done: int,
    total: int,
    progress: Progress | None,
) -> int:
    target = root / jar.path
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    # Written aside and renamed when complete and checked: concurrent fetches (two test
    # runs, say) and interrupted ones never leave a partial jar under the real name.
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, client.stream("GET", f"{repository}/{jar.path}") as got:
            if got.status_code != 200:
                raise JarsUnavailable(
                    f"{repository}/{jar.path} answered {got.status_code}; is "
                    "KOLONY_MAVEN_REPOSITORY a Maven repository?"
                )
            for chunk in got.iter_bytes(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if digest.hexdigest() != jar.sha256:
            raise JarsUnavailable(
                f"{jar.coordinates} from {repository} does not match its pinned SHA-256 "
                f"(got {digest.hexdigest()}); it was not kept. Try again, and if it persists "
                "the repository or something between it and you serves other bytes"
            )
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return done
