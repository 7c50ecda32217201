"""A resumed or multi-worker sweep gives exactly the figures of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from secateurs.search.crossval import evaluate_fold
from secateurs.search.folds import make_folds
from secateurs.search.recipe import PruneSetting, Recipe
from secateurs.search.seeding import trial_seed
from secateurs.zoo import MLP, digits_arrays


def _make():
    return MLP((64, 32, 10))


def test_a_trial_scores_the_same_whether_its_dense_model_was_trained_here_or_cached():
    """The bug: fine-tuning drew its batches from a loader whose generator the dense training
    had advanced only when the dense model was trained in this process."""
    x, y = digits_arrays()
    data = torch.from_numpy(x[:400]), torch.from_numpy(y[:400])
    fold = make_folds(data, k=None, val=0.25)[0]
    recipe = Recipe(prune=PruneSetting(method="unstructured", sparsity=0.8), finetune_steps=8)
    cache: dict = {}
    kw = {"train_steps": 20, "finetune_steps": 8, "cache": cache}
    trained_here = evaluate_fold(_make, data, fold, recipe, **kw)
    assert cache  # the dense model is cached now
    torch.manual_seed(12345)  # whatever the process did before
    from_cache = evaluate_fold(_make, data, fold, recipe, **kw)
    assert from_cache.metric == trained_here.metric
    assert from_cache.nonzeros == trained_here.nonzeros


def test_trial_seed_depends_on_the_trial_only():
    a = trial_seed(0, 1, {"sparsity": 0.5, "method": "unstructured"})
    assert a == trial_seed(0, 1, {"method": "unstructured", "sparsity": 0.5})  # key order
    assert a != trial_seed(0, 2, {"sparsity": 0.5, "method": "unstructured"})
    assert a != trial_seed(1, 1, {"sparsity": 0.5, "method": "unstructured"})
    assert a != trial_seed(0, 1, {"sparsity": 0.6, "method": "unstructured"})
    assert 0 <= a < 2**63


CONFIG = {
    "study": "resume",
    "model": "mlp",
    "model_kwargs": {"sizes": [64, 32, 10]},
    "data": "digits",
    "evaluation": {"kind": "holdout", "val": 0.25},
    "budget": {"train_steps": 30, "finetune_steps": 6, "batch_size": 64, "lr": 0.003},
    "space": {"prune": {"sparsity": [0.3, 0.5, 0.7, 0.9]}},
    "objective": {"tolerance": 0.02},
    "sampler": "grid",
    "seed": 0,
}


def _sweep(folder: Path, db: str, out: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "secateurs", "sweep", "sweep.yaml", "--storage"]
    cmd += [f"sqlite:///{folder / db}", "--out", str(folder / out), "-q"]
    return subprocess.Popen(
        cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _completed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            return con.execute("select count(*) from trials where state='COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _figures(path: Path) -> tuple[list[dict], dict, dict]:
    """Completed trials' figures (without timings and trial numbers), dense, best setting."""
    data = json.loads(path.read_text())

    def plain(row: dict) -> dict:
        return {k: v for k, v in row.items() if k not in ("trial", "seconds", "state")}

    rows = [plain(t) for t in data["trials"] if t["state"] == "COMPLETE"]
    rows.sort(key=lambda r: json.dumps(r, sort_keys=True))
    return rows, data["dense"], plain(data["best"] or {})


@pytest.mark.slow
def test_kill_9_at_a_random_point_then_resume_gives_the_same_figures(tmp_path):
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(CONFIG))
    whole = _sweep(tmp_path, "whole.db", "whole")
    rng = random.Random()
    after, delay = rng.randint(0, 3), rng.uniform(0.0, 0.5)  # trials done, then seconds
    killed = _sweep(tmp_path, "killed.db", "killed")
    while _completed(tmp_path / "killed.db") < after and killed.poll() is None:
        time.sleep(0.05)
    time.sleep(delay)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    resumed = _sweep(tmp_path, "killed.db", "killed")
    _, err2 = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err2
    rows, dense, best = _figures(tmp_path / "whole" / "results.json")
    assert len(rows) == 4 and all("metric_mean" in r for r in rows) and best
    when = f"killed {delay:.2f} s after {after} completed trials"
    assert _figures(tmp_path / "killed" / "results.json") == (rows, dense, best), when
