"""``/ws`` and ``/ws/{agent_id}``: the WebSocket door (the protocol: :mod:`services.ws`)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from services.ws.connection import Connection

router = APIRouter()


@router.websocket("/ws")
async def agent_socket(websocket: WebSocket) -> None:
    await Connection(websocket).run(None)


@router.websocket("/ws/{agent_id}")
async def agent_socket_for(websocket: WebSocket, agent_id: str) -> None:
    """Seed 003's address: the connection is bound to ``agent_id`` (registered already)."""
    await Connection(websocket).run(agent_id)
