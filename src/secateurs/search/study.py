"""Persistent, resumable searches: Optuna studies in SQLite or PostgreSQL.

How a search survives interruptions and several workers:
- Every finished trial is committed to the storage as it ends; an interruption loses at
  most the trials that were running.
- A trial records which worker runs it (host, pid, process start time). When the command
  starts again, RUNNING trials whose local worker is gone (kill -9) are marked failed at
  once; those of other machines are failed by Optuna's heartbeat after its grace period.
- A grid search puts every grid point not yet completed, running or queued into Optuna's
  trial queue (once, before the workers start); workers pop trials from the queue, which is
  atomic in the database, so two workers never take the same point. (Optuna's GridSampler
  cannot express conditional parameters, such as a clipping threshold only for rules other
  than 'none', and counts failed points as visited, so a resumed run would skip them.)
- TPE and NSGA-II studies run until the study holds `n_trials` completed trials.
- The study records a hash of the configuration; a different configuration under the same
  study name is an error, never a silent mix of incomparable trials.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from secateurs.search.config import SweepConfig
from secateurs.search.objective import Evaluator, SweepObjective, key, point
from secateurs.search.space import grid_points
from secateurs.search.storage import open_storage, redact
from secateurs.search.workers import fail_dead_trials

ATTR_HASH = "secateurs:config_hash"
ATTR_CONFIG = "secateurs:config"
ATTR_DENSE = "secateurs:dense"
ATTR_CLIP = "secateurs:clip_thresholds"
DEFAULT_N_TRIALS = 20
MAX_RETRY = 3


class StudyMismatchError(ValueError):
    """The named study exists with a different configuration (it is left untouched)."""


class WorkerError(RuntimeError):
    """A trial raised: the search stopped (completed trials are kept)."""


# ----------------------------------------------------------------------------- settings
Direction = Literal["maximize", "minimize"]


def directions(config: SweepConfig) -> list[Direction]:
    """Optuna directions: maximize the score, or (metric, cost) for a Pareto front."""
    if config.objective.kind == "max_compression":
        return ["maximize"]
    metric_dir: Direction = "maximize" if config.objective.metric == "accuracy" else "minimize"
    return [metric_dir, "minimize"]


def n_target(config: SweepConfig, grid: list[dict] | None) -> int:
    """How many completed trials the study should hold."""
    if grid is not None:
        return min(len(grid), config.n_trials or len(grid))
    return config.n_trials or DEFAULT_N_TRIALS


def make_sampler(config: SweepConfig, worker_index: int = 0) -> Any:
    """The sampler; each worker gets its own seed so parallel workers do not propose twins."""
    import optuna

    seed = config.seed + 1000 * worker_index
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if config.sampler == "nsga2":
        n = config.n_trials or DEFAULT_N_TRIALS
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, n // 4)))
    # Grid points come from the queue; this sampler only answers a trial that raced past
    # an empty queue, and the objective prunes such a trial at once.
    return optuna.samplers.RandomSampler(seed=seed)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


# ----------------------------------------------------------------------------- preparing
@dataclass
class Prepared:
    """A study ready for workers."""

    study: Any
    config: SweepConfig
    storage_url: str
    dense: dict[str, float]
    clip_thresholds: dict[str, list[float]] | None
    target: int
    failed_dead: int = 0
    enqueued: int = 0


def _retry_callback(config: SweepConfig) -> Any:
    import optuna

    if config.sampler != "grid":
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def _open_study(config: SweepConfig, storage: Any, name: str, url: str) -> Any:
    import optuna

    exists = name in optuna.get_all_study_names(storage)
    if exists:
        study = optuna.load_study(study_name=name, storage=storage)
    else:
        study = optuna.create_study(
            storage=storage, study_name=name, directions=directions(config), load_if_exists=True
        )
    stored = study.user_attrs.get(ATTR_HASH)
    where = f"study {name!r} in {redact(url)}"
    if stored is None:
        if study.trials:
            raise StudyMismatchError(
                f"{where} was not created by `secateurs sweep`; choose another --study name"
            )
        study.set_user_attr(ATTR_HASH, config.config_hash())
        study.set_user_attr(ATTR_CONFIG, config.model_dump(mode="json"))
    elif stored != config.config_hash():
        raise StudyMismatchError(
            f"{where} was created with a different configuration (hash {stored}, this one "
            f"{config.config_hash()}); it is left unchanged. Rerun with the original config "
            "to resume it, or pass a new --study name"
        )
    if [d.name.lower() for d in study.directions] != directions(config):
        raise StudyMismatchError(f"{where} optimizes other objectives; use a new --study name")
    return study


def enqueue_missing(study: Any, grid: list[dict], target: int) -> int:
    """Queue the grid points (of the first `target`) not completed, running or queued."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    taken = {key(point(t)) for t in study.get_trials(deepcopy=False, states=live)}
    n = 0
    for i, candidate in enumerate(grid[:target]):
        if key(candidate) not in taken:
            study.enqueue_trial(candidate, user_attrs={"grid_point": i})
            n += 1
    return n


def prepare_study(
    config: SweepConfig,
    storage_url: str,
    study_name: str,
    *,
    evaluator: Evaluator | None = None,
    log: Callable[[str], None] | None = None,
) -> Prepared:
    """Open (or create) the study, check its configuration, compute the dense baseline and
    clipping thresholds once, fail the trials of dead workers, and queue missing grid points.
    `log` receives one-line progress messages.
    """
    say = log or (lambda _msg: None)
    _quiet_optuna()
    storage = open_storage(storage_url, stale_trial_callback=_retry_callback(config))
    study = _open_study(config, storage, study_name, storage_url)
    attrs = study.user_attrs
    ev = evaluator
    dense = attrs.get(ATTR_DENSE)
    if dense is None:
        ev = ev or Evaluator(config)
        say(f"training the dense baseline on {len(ev.folds)} fold(s)")
        try:
            cv = ev.evaluate(None)
        except Exception as e:
            raise WorkerError(f"the dense baseline failed: {type(e).__name__}: {e}") from e
        dense = {"mean": cv.metric_mean, "std": cv.metric_std, "params": cv.params}
        study.set_user_attr(ATTR_DENSE, dense)
    thresholds = None
    if config.space.clip.threshold == "suggest":
        thresholds = attrs.get(ATTR_CLIP)
        if thresholds is None:
            ev = ev or Evaluator(config)
            say("recording gradient norms to suggest clipping thresholds")
            thresholds = ev.clip_thresholds()
            study.set_user_attr(ATTR_CLIP, thresholds)
    failed = fail_dead_trials(study)
    grid = grid_points(config.space, thresholds) if config.sampler == "grid" else None
    target = n_target(config, grid)
    enqueued = enqueue_missing(study, grid, target) if grid is not None else 0
    done = count_states(study).get("COMPLETE", 0)
    if done or failed:
        say(
            f"resuming study {study_name!r}: {done} trial(s) complete, "
            f"{failed} left running by dead workers marked failed"
        )
    return Prepared(study, config, storage_url, dense, thresholds, target, failed, enqueued)


# ----------------------------------------------------------------------------- running
def count_states(study: Any) -> dict[str, int]:
    """Number of trials per state name (COMPLETE, RUNNING, WAITING, FAIL, PRUNED)."""
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _should_stop(
    study: Any, config: SweepConfig, target: int, deadline: float | None, parent: int | None
) -> bool:
    if deadline is not None and time.monotonic() >= deadline:
        return True
    if parent is not None and os.getppid() != parent:
        return True  # the command that started this worker is gone
    c = count_states(study)
    waiting, running, complete = c.get("WAITING", 0), c.get("RUNNING", 0), c.get("COMPLETE", 0)
    if config.sampler == "grid":
        return waiting == 0
    return complete >= target or (complete + running >= target and waiting == 0)


def run_worker(
    config: SweepConfig,
    storage_url: str,
    study_name: str,
    *,
    target: int,
    worker_index: int = 0,
    deadline: float | None = None,
    evaluator: Evaluator | None = None,
    on_trial: Callable[[Any, Any], None] | None = None,
    parent: int | None = None,
) -> None:
    """Run trials until the study holds `target` completed ones (or the grid is done)."""
    import optuna

    _quiet_optuna()
    storage = open_storage(storage_url, stale_trial_callback=_retry_callback(config))
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=make_sampler(config, worker_index)
    )
    attrs = study.user_attrs
    if attrs.get(ATTR_HASH) != config.config_hash():
        raise StudyMismatchError(f"study {study_name!r} changed its configuration under a worker")
    objective = SweepObjective(
        evaluator or Evaluator(config), attrs[ATTR_DENSE], attrs.get(ATTR_CLIP), target
    )
    callbacks = [on_trial] if on_trial is not None else None
    while not _should_stop(study, config, target, deadline, parent):
        try:
            study.optimize(objective, n_trials=1, callbacks=callbacks)
        except ValueError as e:
            if not _finished_by_another_worker(e):
                raise WorkerError(f"a trial failed: {type(e).__name__}: {e}") from e
        except Exception as e:
            raise WorkerError(f"a trial failed: {type(e).__name__}: {e}") from e


def _finished_by_another_worker(error: ValueError) -> bool:
    """True for Optuna's refusal to record a trial that another worker already finished.

    On SQLite, Optuna takes a queued trial with SELECT ... FOR UPDATE, which SQLite ignores:
    under load two workers can take the same queued trial. Both evaluate it (seeded, so the
    same figures); the first records it and the second is refused. Nothing is lost: that
    worker goes on with the next trial.
    """
    return str(error).startswith("Cannot tell a COMPLETE trial")


def _worker_entry(
    config_json: str,
    storage_url: str,
    study_name: str,
    target: int,
    worker_index: int,
    threads: int,
    deadline_s: float | None,
    parent: int,
    errors: Any,
) -> None:
    import torch

    torch.set_num_threads(threads)
    deadline = time.monotonic() + deadline_s if deadline_s is not None else None
    try:
        config = SweepConfig.model_validate_json(config_json)
        run_worker(
            config,
            storage_url,
            study_name,
            target=target,
            worker_index=worker_index,
            deadline=deadline,
            parent=parent,
        )
    except KeyboardInterrupt:
        pass
    except BaseException as e:  # report to the parent, which prints one clear line
        errors.put(f"worker {worker_index}: {type(e).__name__}: {e}")
        raise SystemExit(1) from None


@dataclass
class SweepOutcome:
    """What a `run_sweep` call did."""

    prepared: Prepared
    seconds: float
    errors: list[str]


def run_sweep(
    config: SweepConfig,
    storage_url: str,
    study_name: str,
    *,
    workers: int = 1,
    progress: bool = True,
) -> SweepOutcome:
    """Prepare the study and run `workers` local workers until it is complete.

    `workers=1` runs in this process; more start that many processes (spawned, each
    opening the storage itself and using its share of the CPU threads).
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    t0 = time.monotonic()
    # Built here in every case: a bad model/data/trainer name fails before the storage opens.
    evaluator = Evaluator(config)
    log = (lambda msg: print(msg, file=sys.stderr)) if progress else None
    prepared = prepare_study(config, storage_url, study_name, evaluator=evaluator, log=log)
    budget = config.budget.timeout_s
    deadline = t0 + budget if budget is not None else None
    bar = _progress(prepared, progress)
    errors: list[str] = []
    try:
        if workers == 1:
            run_worker(
                config,
                storage_url,
                study_name,
                target=prepared.target,
                deadline=deadline,
                evaluator=evaluator,
                on_trial=(lambda study, trial: bar.refresh_from(study)) if bar else None,
            )
        else:
            errors = _run_processes(prepared, study_name, workers, budget, bar)
    except WorkerError as e:
        errors.append(str(e))
    finally:
        if bar is not None:
            bar.close()
    return SweepOutcome(prepared, time.monotonic() - t0, errors)


def _run_processes(
    prepared: Prepared, study_name: str, workers: int, budget: float | None, bar: Any
) -> list[str]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    errors_q = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [
        ctx.Process(
            target=_worker_entry,
            args=(
                prepared.config.model_dump_json(),
                prepared.storage_url,
                study_name,
                prepared.target,
                i,
                threads,
                budget,
                os.getpid(),
                errors_q,
            ),
            name=f"secateurs-sweep-worker-{i}",
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.5)
            if bar is not None:
                bar.refresh_from(prepared.study)
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=10)
        raise
    errors = []
    with contextlib.suppress(queue.Empty):
        while True:
            errors.append(errors_q.get(timeout=0.1))
    for i, p in enumerate(procs):
        if p.exitcode not in (0, None) and not any(e.startswith(f"worker {i}:") for e in errors):
            errors.append(f"worker {i} ended with exit code {p.exitcode}; rerun to resume")
    return errors


class _Bar:
    """A tqdm bar of completed trials that polls the study."""

    def __init__(self, prepared: Prepared) -> None:
        from tqdm.auto import tqdm

        self.target = prepared.target
        done = count_states(prepared.study).get("COMPLETE", 0)
        self.bar = tqdm(
            total=self.target, initial=min(done, self.target), desc="sweep", unit="trial"
        )

    def refresh_from(self, study: Any) -> None:
        done = min(count_states(study).get("COMPLETE", 0), self.target)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _progress(prepared: Prepared, enabled: bool) -> _Bar | None:
    return _Bar(prepared) if enabled else None


def best_setting(study: Any, tolerance: float) -> Any:
    """The most compressed completed trial within tolerance (ties: better metric, earlier)."""
    from optuna.trial import TrialState

    feasible = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("result", {}).get("drop", math.inf) <= tolerance + 1e-12
    ]
    if not feasible:
        return None
    return max(
        feasible,
        key=lambda t: (
            t.user_attrs["result"]["achieved_sparsity"],
            -t.user_attrs["result"]["drop"],
            -t.number,
        ),
    )
