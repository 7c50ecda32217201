"""Interrupted saves leave nothing behind; saved files get the mode the umask gives."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from secateurs import io
from secateurs.io.atomic import atomic_path, remove_stale_temporaries

SAVER = """
import sys, torch
from torch import nn
from secateurs import io
model = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 1024))
print("ready", flush=True)
while True:
    io.save(model, sys.argv[1])
"""


def test_kill_9_during_saves_leaves_only_a_whole_file(tmp_path):
    target = tmp_path / "out" / "model.safetensors"
    env = dict(os.environ, PYTHONPATH=str(Path(io.__file__).parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(target)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.uniform(0.0, 0.3))  # somewhere inside a later save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert io.load(target)[0].weight.shape == (1024, 1024)  # the last complete save


def test_saved_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        path = io.save(nn.Linear(3, 3), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_dead_writers_temporary_is_removed_by_the_next_write(tmp_path):
    """Where no unnamed temporary is possible, a kill -9 leaves `.NAME.PID-XXXX.tmp`; the next
    write to that target removes the ones whose process is gone (never a live writer's)."""
    target = tmp_path / "model.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".{target.name}.{dead}-abcd.tmp"
    live = tmp_path / f".{target.name}.{os.getppid()}-abcd.tmp"
    other = tmp_path / f".other.{dead}-abcd.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"x" * 10)
    assert remove_stale_temporaries(target) == [stale]
    with atomic_path(target) as tmp:
        torch.save({"w": torch.zeros(2)}, tmp)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, other.name]
    )


def test_saves_name_an_unnamed_temporary_where_the_kernel_has_one(tmp_path, monkeypatch):
    """On Linux a save never passes through a named temporary (which a kill -9 would leave):
    the O_TMPFILE file is named with linkat(AT_EMPTY_PATH), as /proc/self/fd links fail with
    EXDEV on some machines (this project's CI among them)."""
    import pytest

    from secateurs.io import atomic

    try:
        os.close(os.open(tmp_path, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except (AttributeError, OSError):
        pytest.skip("no O_TMPFILE on this system: saves use named temporaries")

    def named(*_a, **_k):
        raise AssertionError("fell back to a named temporary")

    monkeypatch.setattr(atomic, "atomic_path", named)
    target = atomic.write_bytes_atomic(tmp_path / "m.bin", b"whole")
    assert target.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]
