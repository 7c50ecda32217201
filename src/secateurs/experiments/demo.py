"""`secateurs demo`: the whole job on the digits CNN, in a few minutes on a laptop CPU.

1. record gradient norms in a short warm-up and train the residual CNN with norm clipping
   at their median;
2. sensitivity scan: prune each layer alone at several sparsities (validation accuracy);
3. choose the global sparsity by k-fold cross-validation (each fold trains a model, prunes
   it and fine-tunes it briefly): the largest candidate whose mean accuracy stays within
   `tolerance` (1 point) of the dense models of the same folds;
4. prune the trained model to that sparsity and fine-tune it (masks fixed, same clipping);
5. structured pruning of the trained model (channels removed) and fine-tuning;
6. export: secateurs files (packed sparse) for every model and ONNX for the structured one,
   each checked by loading it back;
7. write results.json, the HTML report and its CSV/JSON, and a log.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable
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
from secateurs.zoo.registry import TASKS, Task, TaskData

log = logging.getLogger("secateurs.demo")


@dataclass(frozen=True)
class DemoConfig:
    """Budgets of the demo; the defaults fit in about a minute on two CPU cores."""

    seed: int = 0
    steps: int = 300
    warmup_steps: int = 40
    clip_percentile: float = 50.0
    scan_sparsities: tuple[float, ...] = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
    candidates: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    folds: int = 3
    cv_steps: int = 200
    cv_finetune_steps: int = 40
    tolerance: float = 0.01
    finetune_steps: int = 100
    finetune_lr_factor: float = 0.5
    structured_ratio: float = 0.5
    latency_runs: int = 30

    def __post_init__(self) -> None:
        for name in ("steps", "warmup_steps", "cv_steps", "latency_runs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("finetune_steps", "cv_finetune_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2 for cross-validation, got {self.folds}")
        if not self.candidates or not all(0 < s < 1 for s in self.candidates):
            raise ValueError(f"candidates must be sparsities in (0, 1), got {self.candidates}")
        if not self.scan_sparsities or not all(0 < s < 1 for s in self.scan_sparsities):
            raise ValueError(f"scan_sparsities must lie in (0, 1), got {self.scan_sparsities}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance is an accuracy drop in [0, 1), got {self.tolerance}")
        if not 0 < self.structured_ratio < 1:
            raise ValueError(f"structured_ratio must be in (0, 1), got {self.structured_ratio}")
        if not 0 < self.clip_percentile <= 100:
            raise ValueError(f"clip_percentile must be in (0, 100], got {self.clip_percentile}")


@dataclass
class DemoResult:
    """What the demo produced: the results document, files written, stage timings."""

    results: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> float:
    """Export `model` to ONNX (batch dimension dynamic) atomically; return the largest
    absolute difference between onnxruntime's and PyTorch's outputs on `example`."""
    import onnxruntime as ort

    from secateurs.io.atomic import atomic_path

    model = model.eval()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # the TorchScript exporter needs no extra packages; torch marks it deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": example.numpy()})[0]
    with torch.no_grad():
        want = model(example).numpy()
    return float(abs(got - want).max())


class _Stages:
    """Numbered stage messages (unless quiet) and their wall-clock times."""

    def __init__(self, total: int, echo: Callable[[str], None] | None) -> None:
        self.total, self.echo, self.n = total, echo, 0
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = 0.0

    def start(self, name: str, message: str) -> None:
        self.stop()
        self.n += 1
        self._name, self._t0 = name, time.perf_counter()
        log.info("[%d/%d] %s", self.n, self.total, message)
        if self.echo is not None:
            self.echo(f"[{self.n}/{self.total}] {message}")

    def stop(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = time.perf_counter() - self._t0
            self._name = None


def run_demo(
    out_dir: str | Path,
    cfg: DemoConfig | None = None,
    *,
    echo: Callable[[str], None] | None = print,
    progress: bool = True,
) -> DemoResult:
    """Run the demo, writing everything into `out_dir`; see the module docstring."""
    from secateurs.io.atomic import write_text_atomic
    from secateurs.report import dump_json, write_report

    cfg = cfg or DemoConfig()
    out = Path(out_dir)
    task = TASKS["cnn"]
    stages = _Stages(7, echo)
    started = time.perf_counter()
    data = task.data(cfg.seed)

    stages.start("train", f"training the digits CNN ({cfg.steps} steps) with norm clipping")
    threshold, model, dense, trace = _train_dense(task, data, cfg, progress)
    log.info("dense: test accuracy %.4f, clip threshold %.4g", dense["value"], threshold)
    stages.start("scan", "sensitivity scan: each layer pruned alone")
    curves = _scan_curves(model, data, cfg, progress)
    stages.start(
        "crossval",
        f"{cfg.folds}-fold cross-validation of {len(cfg.candidates)} sparsities "
        f"(tolerance {cfg.tolerance * 100:g} point)",
    )
    chosen, note, cv_curve = _choose_sparsity(task, cfg, threshold, progress)
    curves.append(cv_curve)
    stages.start("finetune", f"pruning to sparsity {chosen:g} and fine-tuning")
    sparse, sparse_run, layers = _prune_sparse(task, model, data, cfg, threshold, chosen)
    stages.start("structured", f"structured pruning: {cfg.structured_ratio:g} of the channels")
    small, small_run = _prune_structured(task, model, data, cfg, threshold)
    runs = [dense, sparse_run, small_run]
    stages.start("export", "exporting: secateurs files and ONNX, each loaded back")
    models = {"dense": model, "sparse": sparse, "structured": small}
    files, checks = _export(out, task, data, threshold, models)
    for r in runs:
        r["artifact"] = files[f"{r['variant']} model"].name

    stages.start("report", "writing results and the HTML report")
    results = {
        "schema": "secateurs.results/1",
        "title": "secateurs demo: clip, choose a sparsity by cross-validation, prune, export",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "baseline_variant": "dense",
        "config": {
            **asdict(cfg),
            "clip_threshold": threshold,
            "chosen_sparsity": chosen,
            "checks": checks,
        },
        "runs": runs,
        "curves": curves,
        "layers": layers,
        "traces": [trace],
        "notes": _notes(cfg, threshold, chosen, note, len(data.example)),
    }
    files["results"] = out / "results.json"
    write_text_atomic(files["results"], dump_json(results))
    files["report"] = write_report(results, out / "report.html", png_dir=out / "figures").html
    stages.stop()
    results["config"]["seconds"] = {k: round(v, 2) for k, v in stages.seconds.items()}
    results["config"]["seconds"]["total"] = round(time.perf_counter() - started, 2)
    write_text_atomic(files["results"], dump_json(results))
    return DemoResult(results=results, files=files, seconds=stages.seconds)


def _train_dense(
    task: Task, data: TaskData, cfg: DemoConfig, progress: bool
) -> tuple[float, nn.Module, dict[str, Any], dict[str, Any]]:
    """1. The clip threshold from a warm-up, then training with norm clipping at it."""
    from secateurs.clip import ByNorm
    from secateurs.pipeline import Pipeline, Run, Seed, Train
    from secateurs.search import suggest_clip_thresholds

    suggestion = suggest_clip_thresholds(
        task.model(cfg.seed),
        data.train,
        cfg.warmup_steps,
        lr=task.budget.lr,
        percentiles=(cfg.clip_percentile,),
    )
    threshold = suggestion.percentiles[float(cfg.clip_percentile)]
    monitor = GradNormRecorder(ByNorm(threshold))
    tracker = ValidationTracker(task, data, task.budget.eval_every)

    def train(net: nn.Module, rule: Any) -> Any:
        return task.train(
            net, data, steps=cfg.steps, clip=rule, callbacks=[tracker], progress=progress
        )

    trained = Pipeline(Seed(cfg.seed), Train(train))(Run(task.model(cfg.seed), rule=monitor))
    model, fit = trained.model, trained.fits["train"]
    losses = fit.losses
    dense = _run(
        task,
        model,
        data,
        "dense",
        cfg,
        train_seconds=trained.seconds["train"],
        steps_to_target=tracker.steps_to_target,
        loss_spikes=loss_spikes(losses),
        nonfinite_steps=nonfinite_steps(fit.steps),
        clip_rate=monitor.clip_rate,
        clip_threshold=threshold,
    )
    trace = {
        "model": "cnn",
        "variant": "dense",
        "seed": cfg.seed,
        "grad_norm": list(monitor.record.norms),
        "loss": losses,
        "threshold": threshold,
        "clipped_steps": monitor.clipped_steps,
    }
    return threshold, model, dense, trace


def _scan_curves(
    model: nn.Module, data: TaskData, cfg: DemoConfig, progress: bool
) -> list[dict[str, Any]]:
    """2. Sensitivity scan: each layer pruned alone, one curve per layer."""
    from secateurs.search import sensitivity_scan

    scan = sensitivity_scan(model, data.val, sparsities=cfg.scan_sparsities, progress=progress)
    return [
        {
            "model": "cnn",
            "kind": "sensitivity",
            "name": layer,
            "x_label": "sparsity of this layer",
            "y_label": "validation accuracy",
            "x": [0.0, *scan.achieved[layer]],
            "y": [scan.baseline, *scan.metric[layer]],
            "y_err": None,
        }
        for layer in scan.layers
    ]


def _choose_sparsity(
    task: Task, cfg: DemoConfig, threshold: float, progress: bool
) -> tuple[float, str, dict[str, Any]]:
    """3. The largest candidate sparsity whose k-fold mean accuracy stays within tolerance."""
    from secateurs.search import Recipe, cross_validate
    from secateurs.search.recipe import ClipSetting, PruneSetting

    seed = cfg.seed
    split = _pooled(seed)
    cache: dict[Any, Any] = {}
    clip_setting = ClipSetting(rule="norm", threshold=threshold)
    cv = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cfg.candidates), desc="cross-validation", unit="sparsity", leave=False)
    for s in cfg.candidates:
        recipe = Recipe(prune=PruneSetting(method="unstructured", sparsity=s), clip=clip_setting)
        res = cross_validate(
            lambda: task.model(seed),
            split,
            recipe,
            k=cfg.folds,
            finetune_steps=cfg.cv_finetune_steps,
            train_steps=cfg.cv_steps,
            lr=task.budget.lr,
            finetune_lr=task.budget.lr * cfg.finetune_lr_factor,
            seed=seed,
            cache=cache,
        )
        cv.append((s, res))
        log.info("cv sparsity %.2f: %s", s, res)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    dense_cv = cv[0][1].dense_mean
    ok = [s for s, r in cv if r.metric_mean >= dense_cv - cfg.tolerance]
    chosen = max(ok) if ok else min(cfg.candidates)
    note = (
        f"chosen sparsity {chosen:g}: the largest whose {cfg.folds}-fold mean accuracy stays "
        f"within {cfg.tolerance * 100:g} point of the dense models ({dense_cv:.4f})"
        if ok
        else f"no candidate stayed within {cfg.tolerance * 100:g} point; using the smallest"
    )
    curve = {
        "model": "cnn",
        "kind": "sparsity",
        "name": f"{cfg.folds}-fold CV, pruned + {cfg.cv_finetune_steps} fine-tuning steps",
        "x_label": "global sparsity of prunable weights",
        "y_label": "validation accuracy (mean ± std over folds)",
        "x": [0.0, *[s for s, _ in cv]],
        "y": [dense_cv, *[r.metric_mean for _, r in cv]],
        "y_err": [cv[0][1].dense_std, *[r.metric_std for _, r in cv]],
        "reference": dense_cv - cfg.tolerance,
        "reference_label": f"dense folds - {cfg.tolerance * 100:g} point",
        "highlight_x": chosen,
        "highlight_label": f"chosen: {chosen:g}",
    }
    return chosen, note, curve


def _finetuned(
    task: Task, data: TaskData, cfg: DemoConfig, threshold: float, model: nn.Module, op: Any
) -> Any:
    """Prune -> accuracy before fine-tuning -> fine-tune with the same clipping (a pipeline)."""
    from secateurs.clip import ByNorm
    from secateurs.pipeline import Measure, Pipeline, Prune, Run, Train

    ft_lr = task.budget.lr * cfg.finetune_lr_factor

    def test_accuracy(net: nn.Module) -> float:
        return task.evaluate(net, data, "test")["accuracy"]

    def finetune(net: nn.Module, rule: Any) -> Any:
        return task.train(net, data, steps=cfg.finetune_steps, lr=ft_lr, clip=rule)

    finetuning = [Train(finetune, "finetune")] if cfg.finetune_steps else []
    return Pipeline(Prune(op), Measure("before_finetune", test_accuracy), *finetuning)(
        Run(model, rule=ByNorm(threshold))
    )


def _prune_sparse(
    task: Task, model: nn.Module, data: TaskData, cfg: DemoConfig, threshold: float, chosen: float
) -> tuple[nn.Module, dict[str, Any], list[dict[str, Any]]]:
    """4. Prune a copy to the chosen sparsity, fine-tune it, bake the masks in."""
    from secateurs.pipeline import Bake, in_place
    from secateurs.prune import sparsity_report, unstructured_

    op = in_place(unstructured_, sparsity=chosen)
    tuned = Bake()(_finetuned(task, data, cfg, threshold, copy.deepcopy(model), op))
    sparse = tuned.model
    row = _run(
        task,
        sparse,
        data,
        "sparse",
        cfg,
        baseline=model,
        train_seconds=tuned.seconds.get("finetune", 0.0),
        metrics={"before_finetune": tuned.metrics["before_finetune"], "requested": chosen},
        clip_threshold=threshold,
    )
    layers = [
        {
            "model": "cnn",
            "variant": "sparse",
            "layer": layer.name,
            "params": layer.params,
            "nonzeros": layer.nonzeros,
        }
        for layer in sparsity_report(sparse, include_all=False).layers
    ]
    return sparse, row, layers


def _prune_structured(
    task: Task, model: nn.Module, data: TaskData, cfg: DemoConfig, threshold: float
) -> tuple[nn.Module, dict[str, Any]]:
    """5. Structured pruning (channels removed: a smaller model), then fine-tuning."""
    from secateurs.prune import structured

    example = first_example(data.example)

    def op(net: nn.Module) -> tuple[nn.Module, Any]:
        return structured(net, example, ratio=cfg.structured_ratio)

    shrunk = _finetuned(task, data, cfg, threshold, model, op)
    row = _run(
        task,
        shrunk.model,
        data,
        "structured",
        cfg,
        baseline=model,
        train_seconds=shrunk.seconds.get("finetune", 0.0),
        metrics={
            "before_finetune": shrunk.metrics["before_finetune"],
            "requested": cfg.structured_ratio,
        },
        clip_threshold=threshold,
    )
    return shrunk.model, row


def _export(
    out: Path, task: Task, data: TaskData, threshold: float, models: dict[str, nn.Module]
) -> tuple[dict[str, Path], dict[str, Any]]:
    """6. secateurs files for every model and ONNX for the structured one, each loaded back."""
    from secateurs.io import load, save

    files: dict[str, Path] = {}
    checks: dict[str, Any] = {}
    for name, m in models.items():
        path = out / f"cnn-{name}.secateurs"
        save(m, path, arch=task.arch, metadata={"demo": name, "clip_threshold": threshold})
        back = load(path, arch=task.arch)  # the demo names its own factory
        checks[f"{name} file reloads identically"] = _same_outputs(m, back, data.example)
        files[f"{name} model"] = path
    onnx_path = out / "cnn-structured.onnx"
    checks["onnx max |diff| vs torch"] = export_onnx(models["structured"], data.example, onnx_path)
    files["onnx"] = onnx_path
    return files, checks


def _notes(cfg: DemoConfig, threshold: float, chosen: float, note: str, batch: int) -> list[str]:
    return [
        f"Norm-clipping threshold {threshold:.4g}: the {cfg.clip_percentile:g}th percentile "
        f"of the gradient norms of a {cfg.warmup_steps}-step warm-up without clipping.",
        note + ".",
        f"Sparse: global magnitude pruning to {chosen:g}, then {cfg.finetune_steps} "
        "fine-tuning steps with the masks fixed; its file stores only the non-zeros.",
        f"Structured: {cfg.structured_ratio:g} of the channels of every prunable group "
        "removed (a smaller dense model), then fine-tuned; exported to ONNX too.",
        "Accuracy on the held-out test split; latency is the median of repeated CPU runs "
        f"on a batch of {batch} images; speed-up is timed interleaved with the dense model "
        "(median ratio; '≈1 (noise)' when the spread of the ratios includes 1).",
    ]


def _pooled(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation digits together (images), for k-fold cross-validation."""
    from secateurs.zoo.data import digits

    s = digits(image=True)
    del seed  # the split is fixed; folds are drawn by cross_validate's own seed
    return torch.cat([s.x_train, s.x_val]), torch.cat([s.y_train, s.y_val])


def _same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    a.eval()
    b.eval()
    with torch.no_grad():
        return bool(torch.allclose(a(x), b(x), rtol=1e-5, atol=1e-6))


def _run(
    task: Any,
    model: nn.Module,
    data: TaskData,
    variant: str,
    cfg: DemoConfig,
    baseline: nn.Module | None = None,
    **info: Any,
) -> dict[str, Any]:
    m = measure(task, model, data, latency_runs=cfg.latency_runs, baseline=baseline)
    extra = info.pop("metrics", {})
    row = {
        "model": "cnn",
        "variant": variant,
        "seed": cfg.seed,
        "metric": task.metric,
        "higher_is_better": True,
        **m,
        **info,
    }
    row["metrics"] = {**m["metrics"], **extra}
    return row
