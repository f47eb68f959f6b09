"""The Node examples in ``examples/node/``: where they are, whether ``node`` is here, and their npm install.

Tests that run them use ``NODE_MARKS`` (skipped without ``node``; one ``xdist_group`` so that one ``npm ci`` runs
at a time) and the ``node_example`` fixture of ``tests/conftest.py``."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["EXAMPLE", "NODE", "NODE_MARKS", "install"]

EXAMPLE = Path(__file__).parents[1] / "examples" / "node"
NODE = shutil.which("node")
NODE_MARKS = [
    pytest.mark.skipif(NODE is None, reason="node is not on PATH"),
    pytest.mark.xdist_group("node"),  # one `npm ci` at a time
]


def install() -> Path:
    """``npm ci`` from the committed lock file unless both dependencies are there already (npm's cache serves it
    offline once it has seen them). Returns the example's directory. One install at a time across processes (a
    file lock: two ``npm ci`` in one directory remove each other's files — seen in a CI run where tests of two
    modules asked at once)."""
    modules = EXAMPLE / "node_modules"
    with (EXAMPLE / ".install.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (modules / "jose").is_dir() or not (modules / "standardwebhooks").is_dir():
            npm = shutil.which("npm")
            assert npm, "node without npm"
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE, check=True, capture_output=True, timeout=300
            )
    return EXAMPLE
