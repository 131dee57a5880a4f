"""The gateway's read models, each folded from its log: ``TaskBoard``, ``MessageBoard``,
``MemoryBoard``, ``AppBoard`` and the ``EventFeed``, with their filters beside them. (The
agent directory, which stream workers keep too, is :mod:`core.directory`.)"""
