"""Shared pieces of the framework integration tests: digits batches, a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(args: list[str], timeout: float = 240, env: dict | None = None) -> str:
    """Run `python args...` from the repository root with our sources first on the path."""
    full = dict(os.environ, PYTHONPATH=str(ROOT / "src"), KERAS_BACKEND="torch", **(env or {}))
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout

