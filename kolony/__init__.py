"""Kolony: a Kafka-native, event-sourced control plane for AI agent networks."""

__version__ = "0.1.0"
