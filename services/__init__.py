"""Kolony's read side and command publishers: the gateway (REST, SSE) and its service layer."""
