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

from secateurs.experiments.scorecard import environment, first_example, measure
from secateurs.experiments.tracking import (
    GradMonitor,
    ValidationTracker,
    loss_spikes,
    nonfinite_steps,
)
from secateurs.zoo.registry import TASKS, TaskData

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
    from secateurs.clip import ByNorm
    from secateurs.io import load, save
    from secateurs.prune import make_permanent, sparsity_report, unstructured_
    from secateurs.prune.structural import structured
    from secateurs.report import dump_json, write_report
    from secateurs.search import Recipe, cross_validate, sensitivity_scan, suggest_clip_thresholds
    from secateurs.search.recipe import ClipSetting, PruneSetting

    cfg = cfg or DemoConfig()
    out = Path(out_dir)
    task = TASKS["cnn"]
    seed = cfg.seed
    stages = _Stages(7, echo)
    started = time.perf_counter()
    data = task.data(seed)

    # 1. clip threshold from a warm-up, then training with norm clipping ------------------
    stages.start("train", f"training the digits CNN ({cfg.steps} steps) with norm clipping")
    suggestion = suggest_clip_thresholds(
        task.model(seed),
        data.train,
        cfg.warmup_steps,
        lr=task.budget.lr,
        percentiles=(cfg.clip_percentile,),
    )
    threshold = suggestion.percentiles[float(cfg.clip_percentile)]
    model = task.model(seed)
    monitor = GradMonitor(ByNorm(threshold))
    tracker = ValidationTracker(task, data, task.budget.eval_every)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    fit = task.train(
        model, data, steps=cfg.steps, clip=monitor, callbacks=[tracker], progress=progress
    )
    train_seconds = time.perf_counter() - t0
    losses = fit.losses
    runs = [
        _run(
            task,
            model,
            data,
            "dense",
            cfg,
            train_seconds=train_seconds,
            steps_to_target=tracker.steps_to_target,
            loss_spikes=loss_spikes(losses),
            nonfinite_steps=nonfinite_steps(fit.steps),
            clip_rate=monitor.clip_rate,
            clip_threshold=threshold,
        )
    ]
    dense = runs[0]
    log.info("dense: test accuracy %.4f, clip threshold %.4g", dense["value"], threshold)

    # 2. sensitivity scan ---------------------------------------------------------------
    stages.start("scan", "sensitivity scan: each layer pruned alone")
    scan = sensitivity_scan(model, data.val, sparsities=cfg.scan_sparsities, progress=progress)
    curves = [
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

    # 3. cross-validated choice of sparsity -------------------------------------------------
    stages.start(
        "crossval",
        f"{cfg.folds}-fold cross-validation of {len(cfg.candidates)} sparsities "
        f"(tolerance {cfg.tolerance * 100:g} point)",
    )
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
    curves.append(
        {
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
    )

    # 4. prune to the chosen sparsity and fine-tune -------------------------------------
    ft_lr = task.budget.lr * cfg.finetune_lr_factor
    stages.start("finetune", f"pruning to sparsity {chosen:g} and fine-tuning")
    sparse = copy.deepcopy(model)
    unstructured_(sparse, sparsity=chosen)
    before = task.evaluate(sparse, data, "test")["accuracy"]
    t0 = time.perf_counter()
    if cfg.finetune_steps:
        task.train(sparse, data, steps=cfg.finetune_steps, lr=ft_lr, clip=ByNorm(threshold))
    make_permanent(sparse)
    runs.append(
        _run(
            task,
            sparse,
            data,
            "sparse",
            cfg,
            baseline=model,
            train_seconds=time.perf_counter() - t0,
            metrics={"before_finetune": before, "requested": chosen},
            clip_threshold=threshold,
        )
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

    # 5. structured pruning and fine-tuning ---------------------------------------------
    stages.start("structured", f"structured pruning: {cfg.structured_ratio:g} of the channels")
    example = first_example(data.example)
    small, _ = structured(model, example, ratio=cfg.structured_ratio)
    before = task.evaluate(small, data, "test")["accuracy"]
    t0 = time.perf_counter()
    if cfg.finetune_steps:
        task.train(small, data, steps=cfg.finetune_steps, lr=ft_lr, clip=ByNorm(threshold))
    runs.append(
        _run(
            task,
            small,
            data,
            "structured",
            cfg,
            baseline=model,
            train_seconds=time.perf_counter() - t0,
            metrics={"before_finetune": before, "requested": cfg.structured_ratio},
            clip_threshold=threshold,
        )
    )

    # 6. export ---------------------------------------------------------------------------
    stages.start("export", "exporting: secateurs files and ONNX, each loaded back")
    files: dict[str, Path] = {}
    checks: dict[str, Any] = {}
    for name, m in (("dense", model), ("sparse", sparse), ("structured", small)):
        path = out / f"cnn-{name}.secateurs"
        save(m, path, arch=task.arch, metadata={"demo": name, "clip_threshold": threshold})
        back = load(path, arch=task.arch)  # the demo names its own factory
        checks[f"{name} file reloads identically"] = _same_outputs(m, back, data.example)
        files[f"{name} model"] = path
    onnx_path = out / "cnn-structured.onnx"
    checks["onnx max |diff| vs torch"] = export_onnx(small, data.example, onnx_path)
    files["onnx"] = onnx_path
    for r in runs:
        r["artifact"] = files[f"{r['variant']} model"].name

    # 7. report ------------------------------------------------------------------------
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
        "traces": [
            {
                "model": "cnn",
                "variant": "dense",
                "seed": seed,
                "grad_norm": list(monitor.norms),
                "loss": losses,
                "threshold": threshold,
                "clipped_steps": monitor.clipped_steps,
            }
        ],
        "notes": [
            f"Norm-clipping threshold {threshold:.4g}: the {cfg.clip_percentile:g}th percentile "
            f"of the gradient norms of a {cfg.warmup_steps}-step warm-up without clipping.",
            note + ".",
            f"Sparse: global magnitude pruning to {chosen:g}, then {cfg.finetune_steps} "
            "fine-tuning steps with the masks fixed; its file stores only the non-zeros.",
            f"Structured: {cfg.structured_ratio:g} of the channels of every prunable group "
            "removed (a smaller dense model), then fine-tuned; exported to ONNX too.",
            "Accuracy on the held-out test split; latency is the median of repeated CPU runs "
            f"on a batch of {len(data.example)} images; speed-up is timed interleaved with the "
            "dense model (median ratio; '≈1 (noise)' when the spread of the ratios includes 1).",
        ],
    }
    files["results"] = out / "results.json"
    from secateurs.io.atomic import write_text_atomic

    write_text_atomic(files["results"], dump_json(results))
    files["report"] = write_report(results, out / "report.html", png_dir=out / "figures").html
    stages.stop()
    results["config"]["seconds"] = {k: round(v, 2) for k, v in stages.seconds.items()}
    results["config"]["seconds"]["total"] = round(time.perf_counter() - started, 2)
    write_text_atomic(files["results"], dump_json(results))
    return DemoResult(results=results, files=files, seconds=stages.seconds)


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
