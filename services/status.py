"""How the hub is, in one place: ``/health``, the MCP ``hub_status`` tool, ``/system/info`` and
the front page all say "ok" on the same condition (:meth:`Hub.ready`: Kafka answers, the
event log is folded, a stream worker is alive) and count from the same read models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.registry import AgentStatus
from schemas.tasks import is_terminal
from services.hub import Hub


def status_word(hub: Hub) -> str:
    return "ok" if hub.ready() else "degraded"


def health(hub: Hub) -> dict[str, Any]:
    """Everything ``/health`` answers: the broker, the read model, each live worker."""
    return {
        "status": status_word(hub),
        "time": datetime.now(UTC).isoformat(),
        "broker": {
            "reachable": hub.broker_reachable(),
            "bootstrap_servers": hub.settings.bootstrap_servers,
        },
        "read_model": {
            "caught_up": hub.caught_up,
            "agents": len(hub.directory.agents()),
            "tasks": len(hub.board.tasks()),
            "apps": len(hub.apps.apps()),
            "app_sessions": len(hub.proxy.sessions()),
        },
        "workers": [
            {
                "worker_id": w.worker_id,
                "last_beacon_at": w.at.isoformat(),
                "active_partitions": list(w.active_partitions),
                "agents_owned": w.agents_owned,
                "commands_decided": w.commands_decided,
                "tasks_open": w.tasks_open,
                "network_view_caught_up": w.network_view_caught_up,
            }
            for w in hub.live_workers()
        ],
    }


def summary(hub: Hub) -> dict[str, Any]:
    """The network at a glance: agents online, tasks open, apps healthy, workers alive."""
    agents = hub.directory.agents()
    tasks = hub.board.tasks()
    apps = hub.apps.apps()
    return {
        "status": status_word(hub),
        "time": datetime.now(UTC).isoformat(),
        "broker_reachable": hub.broker_reachable(),
        "agents": {
            "total": len(agents),
            "online": sum(1 for a in agents if a.status is not AgentStatus.OFFLINE),
        },
        "tasks": {
            "total": len(tasks),
            "open": sum(1 for t in tasks if not is_terminal(t.status.state)),
        },
        "apps": {"total": len(apps), "healthy": sum(a.healthy for a in apps)},
        "workers": len(hub.live_workers()),
        "caught_up": hub.caught_up,
    }
