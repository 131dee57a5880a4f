"""Entry point for ``faust -A streams.main worker``: the same worker ``kolony worker`` runs."""

from __future__ import annotations

from kolony.settings import Settings
from streams.app import KolonyWorker

worker = KolonyWorker(Settings())
app = worker.app
