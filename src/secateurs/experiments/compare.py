"""`secateurs compare`: gradient clipping against pruning against both, per demo model.

For every model and seed the same initial weights and the same batch order train:

- ``baseline``: the task's recipe, no clipping;
- ``clip-value`` / ``clip-norm``: `ByValue` / `ByNorm` with the threshold taken from the
  baseline's own gradients (the median of its per-step max |g| / global norm, so about half
  of a baseline's steps would be clipped: the "clip range from the gradient distribution");
- ``clip-agc``: adaptive gradient clipping (unit-wise, relative to the weight norm);
- ``prune-unstructured``: the trained baseline, magnitude-pruned (global) to the task's
  sparsity, then fine-tuned with the masks fixed;
- ``prune-structured``: the trained baseline with channels/heads removed (a smaller dense
  model), then fine-tuned;
- ``clip-norm+prune``: the ``clip-norm`` model, pruned like ``prune-unstructured`` and
  fine-tuned with the same clipping.

Every variant is measured the same way on the test split (see `scorecard.measure`); a
variant that cannot run on a model (for example structured pruning of an unsupported
layer) is recorded with its error instead of silently dropped.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs.clip import GradNormRecorder
from secateurs.experiments.scorecard import environment, first_example, measure
from secateurs.experiments.tracking import (
    ValidationTracker,
    loss_spikes,
    nonfinite_steps,
)
from secateurs.pipeline import Bake, Measure, Pipeline, Prune, Run, Train
from secateurs.zoo.registry import TASKS, Task, TaskData, get_task

VARIANTS = (
    "baseline",
    "clip-value",
    "clip-norm",
    "clip-agc",
    "prune-unstructured",
    "prune-structured",
    "clip-norm+prune",
)
_NEEDS = {"clip-norm+prune": "clip-norm"}
DEFAULT_SPARSITIES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)

log = logging.getLogger("secateurs.compare")


@dataclass(frozen=True)
class CompareConfig:
    """What to compare. `steps`, `finetune_steps` and `eval_every` override every task's
    budget (tiny values make a smoke test); None keeps the task's own."""

    models: tuple[str, ...] = tuple(TASKS)
    seeds: int = 3
    variants: tuple[str, ...] = VARIANTS
    steps: int | None = None
    finetune_steps: int | None = None
    eval_every: int | None = None
    finetune_lr_factor: float = 0.5
    agc_clip: float = 0.01
    latency_runs: int = 20
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES
    first_seed: int = 0

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models is empty; name at least one of " + ", ".join(TASKS))
        for m in self.models:
            get_task(m)
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models lists a name twice: {list(self.models)}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1, got {self.seeds!r}")
        for name in ("steps", "finetune_steps", "eval_every"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {v!r}")
        if self.latency_runs < 1:
            raise ValueError(f"latency_runs must be >= 1, got {self.latency_runs}")
        if not all(0.0 <= s < 1.0 for s in self.sparsities):
            raise ValueError(f"sparsities must lie in [0, 1), got {list(self.sparsities)}")
        if not (self.finetune_lr_factor > 0 and self.agc_clip > 0):
            raise ValueError("finetune_lr_factor and agc_clip must be > 0")

    @property
    def plan(self) -> tuple[str, ...]:
        """The variants to run in order, with what they need added (baseline always runs)."""
        wanted = {"baseline", *self.variants, *(_NEEDS[v] for v in self.variants if v in _NEEDS)}
        return tuple(v for v in VARIANTS if v in wanted)


@dataclass
class _Trained:
    model: nn.Module
    monitor: GradNormRecorder
    aux_monitor: GradNormRecorder


@dataclass
class SeedResult:
    runs: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    curve_points: list[dict[str, Any]] = field(default_factory=list)


def replace_deployable(task: Task, model: nn.Module, new: nn.Module) -> nn.Module:
    """`model` with its deployable part replaced by `new` (the model itself if it is it)."""
    dep = task.deployable(model)
    if dep is model:
        return new
    for name, child in model.named_children():
        if child is dep:
            setattr(model, name, new)
            return model
    raise ValueError(f"the deployable module of task {task.name!r} is not a direct child")


class _Runner:
    """Runs one (model, seed): trains, prunes, fine-tunes and measures every variant."""

    def __init__(
        self, task: Task, seed: int, cfg: CompareConfig, tick: Callable[[str | None], None]
    ) -> None:
        self.task, self.seed, self.cfg, self.tick = task, seed, cfg, tick
        b = task.budget
        self.steps = cfg.steps or b.steps
        self.finetune_steps = cfg.finetune_steps or b.finetune_steps
        self.eval_every = min(cfg.eval_every or b.eval_every, self.steps)
        self.trained: dict[str, _Trained] = {}
        self.thresholds: dict[str, float] = {}
        self.aux_thresholds: dict[str, float] = {}
        self.out = SeedResult()

    def data(self) -> TaskData:
        # a fresh loader per variant: every variant sees the same batch order
        return self.task.data(self.seed)

    def train(
        self,
        model: nn.Module,
        variant: str,
        steps: int,
        lr: float | None = None,
        track: bool = True,
    ) -> tuple[dict[str, Any], GradNormRecorder, GradNormRecorder]:
        data = self.data()
        monitor = GradNormRecorder(self.rule_for(variant))
        aux = GradNormRecorder(self.rule_for(variant, aux=True))
        tracker = ValidationTracker(self.task, data, self.eval_every) if track else None
        torch.manual_seed(self.seed)
        t0 = time.perf_counter()
        fit = self.task.train(
            model,
            data,
            steps=steps,
            lr=lr,
            clip=monitor,
            aux_clip=aux,
            callbacks=[tracker] if tracker else [],
            seed=self.seed,
        )
        seconds = time.perf_counter() - t0
        losses = fit.losses
        info = {
            "train_seconds": seconds,
            "steps": len(fit.steps),
            "steps_to_target": tracker.steps_to_target if tracker else None,
            "loss_spikes": loss_spikes(losses),
            "nonfinite_steps": nonfinite_steps(fit.steps),
            "clip_rate": monitor.clip_rate,
            "final_loss": losses[-1] if losses else None,
        }
        if tracker and tracker.steps_to_target is None:
            info["steps_to_target_note"] = f"target not reached in {len(fit.steps)} steps"
        return info, monitor, aux

    def record(self, variant: str, model: nn.Module, info: dict[str, Any]) -> None:
        row = {
            "model": self.task.name,
            "variant": variant,
            "seed": self.seed,
            "metric": self.task.metric,
            "higher_is_better": self.task.higher_is_better,
        }
        base = self.trained["baseline"].model if variant != "baseline" else None
        m = measure(
            self.task, model, self.data(), latency_runs=self.cfg.latency_runs, baseline=base
        )
        extra = info.pop("metrics", {})
        row.update(m)
        row["metrics"] = {**m["metrics"], **extra}
        row.update(info)
        self.out.runs.append(row)
        log.info(
            "%s seed %d %s: %s=%.4g nonzeros=%d params=%d",
            self.task.name,
            self.seed,
            variant,
            self.task.metric,
            row["value"],
            row["nonzeros"],
            row["params"],
        )

    def failed(self, variant: str, error: BaseException) -> None:
        msg = f"{type(error).__name__}: {error}"
        log.warning("%s seed %d %s failed: %s", self.task.name, self.seed, variant, msg)
        self.out.runs.append(
            {
                "model": self.task.name,
                "variant": variant,
                "seed": self.seed,
                "metric": self.task.metric,
                "higher_is_better": self.task.higher_is_better,
                "value": None,
                "error": msg,
            }
        )

    def trace(self, variant: str, monitor: GradNormRecorder) -> None:
        if self.seed != self.cfg.first_seed:
            return
        self.out.traces.append(
            {
                "model": self.task.name,
                "variant": variant,
                "seed": self.seed,
                "grad_norm": list(monitor.record.norms),
                # a norm threshold only: it is what the trace (a global norm) compares with
                "threshold": self.thresholds["clip-norm"] if variant == "clip-norm" else None,
                "clipped_steps": monitor.clipped_steps,
            }
        )

    # ---- variants --------------------------------------------------------------------

    def rule_for(self, variant: str, aux: bool = False) -> Any:
        """A fresh clipping rule for `variant` (None for none); `aux`: for a GAN's critic,
        whose thresholds come from the critic's own baseline gradients."""
        from secateurs.clip import make_rule

        thresholds = self.aux_thresholds if aux else self.thresholds
        if aux and not thresholds and variant != "clip-agc":
            return None  # no auxiliary network recorded gradients (not a GAN)
        if not variant.startswith("clip-"):
            return None
        # "clip-<rule>[+prune]": the rule's name in secateurs.clip.RULES
        rule = variant.removeprefix("clip-").removesuffix("+prune")
        if rule == "agc":
            return make_rule(rule, self.cfg.agc_clip)
        return make_rule(rule, thresholds[f"clip-{rule}"], nonfinite="skip")

    def run_training(self, variant: str) -> None:
        run = Pipeline(Train(lambda net, rule: self.train(net, variant, self.steps)))(
            Run(self.task.model(self.seed))
        )
        model, (info, monitor, aux) = run.model, run.fits["train"]
        if variant == "baseline":
            # thresholds from the baseline's own gradients (a GAN's critic from its own)
            for mon, out in ((monitor, self.thresholds), (aux, self.aux_thresholds)):
                if mon.record.norms:
                    out["clip-norm"] = mon.record.percentile(50)
                    out["clip-value"] = mon.record.value_percentile(50)
        info["clip_threshold"] = self.thresholds.get(variant)
        if variant in self.aux_thresholds:
            info["critic_clip_threshold"] = self.aux_thresholds[variant]
        self.trained[variant] = _Trained(model, monitor, aux)
        self.trace(variant, monitor)
        self.record(variant, model, info)

    def prune_and_finetune(self, variant: str) -> None:
        from secateurs.prune import sparsity_report

        source = "clip-norm" if variant == "clip-norm+prune" else "baseline"
        task = self.task
        if variant == "prune-structured":
            from secateurs.prune import structured

            example = first_example(self.data().example)
            requested = task.structured_ratio

            def op(model: nn.Module) -> tuple[nn.Module, Any]:
                small, report = structured(task.deployable(model), example, ratio=requested)
                return replace_deployable(task, model, small), report
        else:
            from secateurs.prune import unstructured_

            requested = task.prune_sparsity

            def op(model: nn.Module) -> tuple[nn.Module, Any]:
                return model, unstructured_(task.deployable(model), sparsity=requested)

        def before(model: nn.Module) -> float:
            return task.evaluate(model, self.data(), "test")[task.metric]

        lr = task.budget.lr * self.cfg.finetune_lr_factor
        run = Pipeline(
            Prune(op),
            Measure("before_finetune", before),
            Train(lambda net, rule: self.train(net, variant, self.finetune_steps, lr, False)),
            Bake(),
        )(Run(copy.deepcopy(self.trained[source].model)))
        model, (info, _, _) = run.model, run.fits["train"]
        info["metrics"] = {
            "before_finetune": run.metrics["before_finetune"],
            "requested": requested,
        }
        info["clip_threshold"] = self.thresholds.get(variant)
        info["steps_to_target"] = None
        if self.seed == self.cfg.first_seed and variant != "prune-structured":
            # (structured pruning leaves no zeros: it makes layers narrower instead)
            report = sparsity_report(self.task.deployable(model), include_all=False)
            for layer in report.layers:
                self.out.layers.append(
                    {
                        "model": self.task.name,
                        "variant": variant,
                        "layer": layer.name,
                        "params": layer.params,
                        "nonzeros": layer.nonzeros,
                    }
                )
        self.record(variant, model, info)

    def sparsity_curve(self, source: str) -> None:
        """One-shot magnitude pruning of a trained model at each sparsity, no fine-tuning."""
        from secateurs.prune import unstructured_

        data = self.data()
        for s in self.cfg.sparsities:
            model = copy.deepcopy(self.trained[source].model)
            x = 0.0
            if s > 0:
                x = unstructured_(self.task.deployable(model), sparsity=s).sparsity
            value = self.task.evaluate(model, data, "val")[self.task.metric]
            self.out.curve_points.append(
                {"model": self.task.name, "source": source, "seed": self.seed, "x": x, "y": value}
            )

    def run(self) -> SeedResult:
        for variant in self.cfg.plan:
            self.tick(variant)
            try:
                if variant.startswith("prune") or variant.endswith("+prune"):
                    self.prune_and_finetune(variant)
                else:
                    self.run_training(variant)
            except Exception as e:  # record and go on: one unsupported variant is a result
                if variant == "baseline":
                    raise
                self.failed(variant, e)
            self.tick(None)
        for source in ("baseline", "clip-norm"):
            if source in self.trained:
                self.sparsity_curve(source)
        return self.out


def _curves(points: Iterable[dict[str, Any]], tasks: dict[str, Task]) -> list[dict[str, Any]]:
    """Mean ± std over seeds of each (model, source, grid point)."""
    from secateurs.report.results import mean_std

    grouped: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for p in points:
        key = (p["model"], p["source"])
        per_seed = grouped.setdefault(key, {})
        per_seed.setdefault(p["seed"], []).append(p)
    curves = []
    for (model, source), by_seed in grouped.items():
        n = min(len(v) for v in by_seed.values())
        xs, ys, es = [], [], []
        for i in range(n):
            xm, _, _ = mean_std(v[i]["x"] for v in by_seed.values())
            ym, ys_, _ = mean_std(v[i]["y"] for v in by_seed.values())
            xs.append(xm)
            ys.append(ym)
            es.append(ys_)
        label = "trained with norm clipping" if source == "clip-norm" else "trained without"
        curves.append(
            {
                "model": model,
                "kind": "sparsity",
                "name": f"{label} (one-shot, no fine-tuning)",
                "x_label": "sparsity of prunable weights",
                "y_label": f"validation {tasks[model].metric}",
                "x": xs,
                "y": ys,
                "y_err": es,
            }
        )
    return curves


def run_compare(
    cfg: CompareConfig,
    *,
    progress: bool = True,
    on_partial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the comparison and return a results document (see `secateurs.report.results`).

    `on_partial(results)` is called after each (model, seed) with the results so far, so
    that an interrupted run leaves everything finished until then.
    """
    from tqdm.auto import tqdm

    tasks = {m: get_task(m) for m in cfg.models}
    plan = cfg.plan
    total = len(cfg.models) * cfg.seeds * len(plan)
    bar = tqdm(total=total, desc="compare", unit="run", disable=not progress)
    out = SeedResult()
    results: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        for name, task in tasks.items():
            for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):

                def tick(variant: str | None, name: str = name, seed: int = seed) -> None:
                    # called with a variant's name when it starts and None when it ends
                    if variant is None:
                        bar.update(1)
                    else:
                        bar.set_description(f"{name} seed {seed}: {variant}")

                res = _Runner(task, seed, cfg, tick).run()
                out.runs += res.runs
                out.traces += res.traces
                out.layers += res.layers
                out.curve_points += res.curve_points
                results = _document(cfg, out, tasks, time.perf_counter() - started)
                if on_partial is not None:
                    on_partial(results)
    finally:
        bar.close()
    return results


def _document(
    cfg: CompareConfig, out: SeedResult, tasks: dict[str, Task], seconds: float
) -> dict[str, Any]:
    from secateurs.report.results import SCHEMA

    return {
        "schema": SCHEMA,
        "title": "secateurs compare: gradient clipping vs pruning vs both",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "config": {**asdict(cfg), "plan": list(cfg.plan), "wall_seconds": round(seconds, 1)},
        "tasks": {
            n: {
                "description": t.description,
                "metric": t.metric,
                "higher_is_better": t.higher_is_better,
                "target": t.target,
                "budget": asdict(t.budget),
                "prune_sparsity": t.prune_sparsity,
                "structured_ratio": t.structured_ratio,
            }
            for n, t in tasks.items()
        },
        "runs": out.runs,
        "curves": _curves(out.curve_points, tasks),
        "layers": out.layers,
        "traces": out.traces,
        "notes": [
            "Metrics are on the test split; mean ± std over seeds. Each seed starts every "
            "variant from the same initial weights and the same batch order.",
            "Clip thresholds come from the baseline's own gradients on the same seed: the "
            "median global L2 norm (clip-norm) and the median per-step max |g| (clip-value).",
            "Pruned variants start from the trained model they name, are pruned once and "
            "fine-tuned with the masks fixed; 'before_finetune' is the metric right after "
            "pruning.",
            "MACs are per example and dense (unstructured zeros still count); latency is the "
            "median of repeated CPU runs on the task's example batch.",
            "Steps to target: first validation check (every eval_every steps) that met the "
            "task's target; empty when never reached.",
        ],
    }


def write_outputs(results: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """results.json, runs.csv and report.html (with its CSV/JSON files) in `out_dir`."""
    from secateurs.io.atomic import write_text_atomic
    from secateurs.report import dump_json, to_csv, write_report

    out = Path(out_dir)
    paths = {
        "results": write_text_atomic(out / "results.json", dump_json(results)),
        "runs": write_text_atomic(out / "runs.csv", to_csv(results["runs"])),
    }
    paths["report"] = write_report(results, out / "report.html").html
    return paths
