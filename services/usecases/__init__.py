"""What the hub does for a caller, one module per entity (agents: ``registry``; ``tasks``,
``messages``, ``memory``, ``apps``): checks against the read models, then a command through the
hub. Every door (REST, WebSocket, MCP) calls these, so each answers alike."""
