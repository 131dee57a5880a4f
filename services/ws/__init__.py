"""The WebSocket protocol: a connection (``connection.Connection``) and what each request
does (``handlers``); the gateway serves it at ``/ws``."""
