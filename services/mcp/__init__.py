"""The MCP door: the hub's tools over MCP (``server.build_server``), a module per group."""

from services.mcp.server import build_server

__all__ = ["build_server"]
