"""Print the agents' event log from Kafka or AWS MSK (``kolony events tail`` as a script).

python -m producers.msk_consumer --follow
"""

from __future__ import annotations

import asyncio
import contextlib

import click

from kolony.settings import Settings
from kolony.tail import tail


@click.command()
@click.option("-n", "--lines", default=20, show_default=True)
@click.option("--follow", "-f", is_flag=True)
@click.option("--type", "type_prefix")
@click.option("--json", "as_json", is_flag=True)
def main(lines: int, follow: bool, type_prefix: str | None, as_json: bool) -> None:
    """Print the last events, optionally following the log."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            tail(
                Settings(),
                lines=lines,
                follow=follow,
                type_prefix=type_prefix,
                as_json=as_json,
                echo=click.echo,
            )
        )


if __name__ == "__main__":
    main()
