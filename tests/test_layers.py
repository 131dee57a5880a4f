"""The floors hold: the import contracts in pyproject.toml ([tool.importlinter]), checked by
import-linter over the whole tree (docs/design.md, "Where things live")."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept() -> None:
    # In a process of its own: import-linter's logging setup disables every logger it finds.
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


PACKAGES = ("schemas", "core", "kolony", "streams", "services", "producers", "bench")
LONG = 400


def test_a_long_module_says_why_at_its_top() -> None:
    """Modules stay small enough to read whole; one over 400 lines says why in its docstring."""
    unexplained = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            if text.count("\n") <= LONG:
                continue
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if "on purpose" not in docstring and "over 400 lines" not in docstring:
                unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert unexplained == [], unexplained
