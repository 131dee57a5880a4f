"""Faust stream processors: the thin shell that feeds commands to Kolony's deciders."""
