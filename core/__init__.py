"""Kolony's pure core: deciders (``decide`` / ``evolve``) and queries over their state.

No clock, no randomness, no I/O: time and ids arrive as arguments.
"""
