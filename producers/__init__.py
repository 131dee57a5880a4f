"""Operator scripts that publish commands straight to Kafka (no gateway needed)."""
