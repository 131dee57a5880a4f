"""Kolony's public data model: A2A shapes, commands, events and topic names.

This package imports nothing from the rest of Kolony; everything else imports it.
"""
