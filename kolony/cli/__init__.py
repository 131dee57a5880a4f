"""The ``kolony`` command line: the roof, the one place (with the processes it starts) that may
import the worker (``streams``) and the gateway (``services``). Each group of commands lives in
a module of its own and is registered here."""

from __future__ import annotations

import click

import kolony
from kolony.cli import records, replay, serve, tasks, tools


@click.group()
@click.version_option(kolony.__version__, prog_name="kolony")
def main() -> None:
    """Kolony: a Kafka-native control plane for AI agent networks."""


for group in (serve, tools, tasks, records, replay):
    for command in group.COMMANDS:
        main.add_command(command)
