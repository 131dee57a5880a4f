"""A WebSocket flood, run as its own process (``python -m tests.support.flood``) so that the
client's work does not slow the measurements taken beside it.

``--mode reader``: sends ``--frames`` ``agent:discover`` requests as fast as the gateway
reads them and takes every answer. ``--mode sender``: sends them and never reads one (the
client that once held 700 MB of a gateway). Prints one JSON line: frames sent, answers read,
how the connection ended.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def flood(url: str, frames: int, mode: str, seconds: float) -> dict[str, object]:
    sent = answered = 0
    closed: str | None = None
    deadline = time.monotonic() + seconds
    frame = '{{"type":"agent:discover","id":{}}}'
    async with connect(url, max_size=None, open_timeout=30, close_timeout=2) as socket:
        await socket.recv()  # hello

        all_read = asyncio.Event()

        async def read() -> None:
            nonlocal answered
            async for _ in socket:
                answered += 1
                if answered == frames:
                    all_read.set()

        reader = asyncio.create_task(read()) if mode == "reader" else None
        try:
            for number in range(frames):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                await asyncio.wait_for(socket.send(frame.format(number)), remaining)
                sent += 1
            if reader is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_read.wait(), deadline - time.monotonic())
        except (TimeoutError, ConnectionClosed) as exc:
            closed = type(exc).__name__
        if reader is not None:
            reader.cancel()
    return {"sent": sent, "answered": answered, "ended": closed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--frames", type=int, default=5_000)
    parser.add_argument("--mode", choices=("reader", "sender"), default="reader")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    result = asyncio.run(flood(args.url, args.frames, args.mode, args.seconds))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
