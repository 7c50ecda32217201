"""Studies: the right answer, resumable after kill -9, shared by workers, never corrupted."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState
from search_helpers import tiny
from sklearn.model_selection import StratifiedKFold
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

from secateurs import prune
from secateurs.cli import app
from secateurs.measure import accuracy
from secateurs.search.config import parse_config
from secateurs.search.results import summary, write_results
from secateurs.search.storage import StorageError, normalize_url, open_storage
from secateurs.search.study import StudyMismatchError, best_setting, run_sweep
from secateurs.train import fit
from secateurs.zoo import MLP, digits

GRID = [0.5, 0.7, 0.8, 0.85, 0.9, 0.95]
TOL = 0.02


def _complete(study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _load(url: str, name: str):
    return optuna.load_study(study_name=name, storage=normalize_url(url))


def _reference_means(grid, k=3, steps=80, lr=0.003, seed=0):
    """Each grid point's mean accuracy over k folds, computed without secateurs.search."""
    split = digits(seed=seed)
    x = torch.cat([split.x_train, split.x_val])
    y = torch.cat([split.y_train, split.y_val])
    trained = []
    for i, (tr, va) in enumerate(
        StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y)
    ):
        tr, va = np.sort(tr), np.sort(va)
        g = torch.Generator().manual_seed(seed + i)
        train = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True, generator=g)
        val = DataLoader(TensorDataset(x[va], y[va]), batch_size=512)
        torch.manual_seed(seed + i)
        model = MLP((64, 32, 10))
        fit(model, train, lr=lr, epochs=math.ceil(steps / len(train)), max_steps=steps)
        trained.append((model, val))
    dense = np.mean([accuracy(m, v) for m, v in trained])
    means = {}
    for s in grid:
        accs = []
        for model, val in trained:
            m = MLP((64, 32, 10))
            m.load_state_dict(model.state_dict())
            prune.unstructured_(m, sparsity=s)
            accs.append(accuracy(m, val))
        means[s] = float(np.mean(accs))
    return float(dense), means


def test_grid_sweep_finds_the_highest_sparsity_within_tolerance(tmp_path):
    cfg = parse_config(
        tiny(
            evaluation={"kind": "kfold", "k": 3},
            budget={"train_steps": 80, "lr": 0.003},
            space={"prune": {"sparsity": GRID}},
            objective={"tolerance": TOL},
        )
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    out = run_sweep(cfg, url, "grid", workers=1, progress=False)
    assert out.errors == []
    dense, ref = _reference_means(GRID)
    study = _load(url, "grid")
    got = {t.params["sparsity"]: t.user_attrs["result"]["metric_mean"] for t in _complete(study)}
    assert sorted(got) == GRID  # every grid point once
    assert got == pytest.approx(ref, abs=1e-12)
    assert out.prepared.dense["mean"] == pytest.approx(dense, abs=1e-12)
    expected = max(s for s in GRID if dense - ref[s] <= TOL)
    assert GRID[0] < expected < GRID[-1], "the grid should bracket the answer"
    best = best_setting(study, TOL)
    assert best.params["sparsity"] == expected
    paths = write_results(study, tmp_path / "out")
    assert "sparsity: " + str(expected) in paths["recipe"].read_text()
    assert summary(study)["best"]["sparsity"] == expected


def _states(db) -> list[str]:
    """Trial states by trial number, read straight from the SQLite file (cheap to poll)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            rows = con.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
        return []
    return [str(state) for _, state in rows]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from secateurs.cli import main; main()", *args]


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path, write_config):
    grid = [0.2, 0.4, 0.5, 0.6, 0.7, 0.8]
    cfg = tiny(
        budget={"train_steps": 40, "finetune_steps": 120},
        space={"prune": {"sparsity": grid}},
    )
    path = write_config(cfg)
    url = f"sqlite:///{tmp_path / 'k.db'}"
    args = [
        "sweep",
        str(path),
        "--storage",
        url,
        "--study",
        "k",
        "--out",
        str(tmp_path / "o"),
        "-q",
    ]
    proc = subprocess.Popen(_cli(*args), cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    db = tmp_path / "k.db"
    deadline = time.monotonic() + 120
    killed_running: list[int] = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            states = _states(db)
            if states.count("COMPLETE") >= 2 and "RUNNING" in states:
                os.kill(proc.pid, signal.SIGKILL)
                killed_running = [n for n, st in enumerate(states) if st == "RUNNING"]
                break
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    study = _load(url, "k")
    before = {t.number: (t.params, t.values) for t in _complete(study)}
    assert len(before) >= 2 and killed_running

    # Rerun the same command (in this process, to save a second interpreter start).
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    study = _load(url, "k")
    after = {t.number: (t.params, t.values) for t in _complete(study)}
    assert all(after[n] == v for n, v in before.items())  # nothing lost or changed
    assert sorted(p["sparsity"] for p, _ in after.values()) == grid  # each point exactly once
    states = {t.number: t.state for t in study.trials}
    assert all(states[n] == TrialState.FAIL for n in killed_running)
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert (tmp_path / "o" / "trials.csv").is_file()


def _two_workers(url: str, name: str) -> None:
    grid = [0.2, 0.4, 0.5, 0.6, 0.7, 0.8]
    cfg = parse_config(
        tiny(budget={"train_steps": 40, "finetune_steps": 80}, space={"prune": {"sparsity": grid}})
    )
    out = run_sweep(cfg, url, name, workers=2, progress=False)
    assert out.errors == []
    study = _load(url, name)
    done = _complete(study)
    assert sorted(t.params["sparsity"] for t in done) == grid
    assert not study.get_trials(states=(TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING))
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2 and os.getpid() not in {int(w.split(":")[1]) for w in workers}


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path):
    _two_workers(f"sqlite:///{tmp_path / 'w.db'}", "two")


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study():
    url = os.environ.get("SECATEURS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("SECATEURS_TEST_POSTGRES_URL is not set (.ci/start-postgres sets it)")
    try:
        open_storage(url, heartbeat=False)
    except StorageError as e:
        pytest.skip(f"no PostgreSQL server reachable: {e}")
    _two_workers(url, f"pg-{uuid.uuid4().hex[:8]}")


def test_a_different_config_never_touches_an_existing_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    run_sweep(parse_config(tiny()), url, "m", progress=False)
    study = _load(url, "m")
    before = [(t.number, t.state, t.values) for t in study.trials], dict(study.user_attrs)
    changed = parse_config(tiny(space={"prune": {"sparsity": [0.3, 0.6, 0.95]}}))
    with pytest.raises(StudyMismatchError, match="different configuration"):
        run_sweep(changed, url, "m", progress=False)
    study = _load(url, "m")
    assert ([(t.number, t.state, t.values) for t in study.trials], dict(study.user_attrs)) == before
    # the same configuration resumes: nothing left to do, nothing added
    again = run_sweep(parse_config(tiny(n_trials=3)), url, "m", progress=False)
    assert again.prepared.enqueued == 0 and len(_load(url, "m").trials) == len(before[0])


def test_tpe_runs_n_trials_and_a_larger_n_trials_extends_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    space = {"prune": {"sparsity": {"low": 0.1, "high": 0.95}}}
    run_sweep(parse_config(tiny(sampler="tpe", n_trials=3, space=space)), url, "t", progress=False)
    assert len(_complete(_load(url, "t"))) == 3
    run_sweep(parse_config(tiny(sampler="tpe", n_trials=5, space=space)), url, "t", progress=False)
    done = _complete(_load(url, "t"))
    assert len(done) == 5 and all(0.1 <= t.params["sparsity"] <= 0.95 for t in done)


def test_nsga2_pareto_front_is_non_dominated(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    cfg = tiny(
        sampler="nsga2",
        n_trials=5,
        objective={"kind": "pareto", "cost": "nonzeros"},
        space={"prune": {"method": ["unstructured", "nm"], "sparsity": {"low": 0.1, "high": 0.95}}},
    )
    run_sweep(parse_config(cfg), url, "p", progress=False)
    study = _load(url, "p")
    done = _complete(study)
    data = summary(study)
    front = {r["trial"] for r in data["pareto"]}
    assert front
    for t in done:
        dominated = any(
            o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
            for o in done
        )
        assert (t.number in front) == (not dominated)
    assert "pareto" in write_results(study, tmp_path / "out")


def test_suggested_clip_thresholds_enter_the_grid(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cfg = tiny(
        space={
            "prune": {"sparsity": [0.5]},
            "clip": {
                "rule": ["none", "norm"],
                "threshold": "suggest",
                "suggest": {"steps": 5, "percentiles": [50], "multipliers": [1.0]},
            },
        }
    )
    out = run_sweep(parse_config(cfg), url, "c", progress=False)
    thresholds = out.prepared.clip_thresholds["norm"]
    assert len(thresholds) == 2 and all(t > 0 for t in thresholds)
    done = _complete(_load(url, "c"))
    used = sorted(t.params["clip_threshold_norm"] for t in done if t.params["clip_rule"] == "norm")
    assert used == thresholds and len(done) == 3


def test_only_trials_of_dead_workers_are_failed(tmp_path, monkeypatch):
    import secateurs.search.workers as study_mod

    monkeypatch.setattr(study_mod, "IDENTITY_GRACE", 0.3)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'd.db'}", study_name="d")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    host, _, _ = study_mod.worker_identity().split(":")
    dead, alive, unsigned = study.ask(), study.ask(), study.ask()
    dead.set_user_attr("worker", f"{host}:{int(gone.stdout)}:1")
    alive.set_user_attr("worker", study_mod.worker_identity())
    other = study.ask()
    other.set_user_attr("worker", f"elsewhere:{os.getpid()}:1")  # another machine: heartbeat's job
    assert study_mod.fail_dead_trials(study) == 2
    states = {t.number: t.state for t in study.trials}
    assert states[dead.number] == states[unsigned.number] == TrialState.FAIL
    assert states[alive.number] == states[other.number] == TrialState.RUNNING


def test_a_trial_finished_by_another_worker_is_recognised_from_optunas_own_error():
    # The race it guards (two SQLite workers taking one queued trial) cannot be forced
    # deterministically; the recognition must match what Optuna really raises.
    import optuna

    from secateurs.search.study import _finished_by_another_worker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(ValueError) as info:
        study.tell(trial, 2.0)
    assert _finished_by_another_worker(info.value)
    assert not _finished_by_another_worker(ValueError("the model diverged"))
