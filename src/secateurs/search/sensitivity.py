"""Sensitivity scan: prune one layer at a time over a grid, measure the validation metric.

The curves show which layers tolerate pruning; `SensitivityResult.suggest` turns them
into per-layer sparsities (a dict that ``prune.unstructured_(model, scope=dict)`` applies)
for an accuracy tolerance, a target overall sparsity, or both.
"""

from __future__ import annotations

import copy
import csv
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from secateurs.io.atomic import write_text_atomic
from secateurs.measure import accuracy
from secateurs.search.folds import as_dataset

DEFAULT_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass
class SensitivityResult:
    """Metric of the model with one layer pruned, for every (layer, grid value).

    `achieved[layer][i]` is the layer's sparsity at grid value i (equal to the grid value
    for a sparsity scan; what the threshold removed for a threshold scan).
    """

    kind: str
    grid: list[float]
    baseline: float
    metric_name: str = "accuracy"
    greater_is_better: bool = True
    layers: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    metric: dict[str, list[float]] = field(default_factory=dict)
    achieved: dict[str, list[float]] = field(default_factory=dict)

    def drop(self, layer: str) -> list[float]:
        """How much worse than the dense baseline each grid value is (positive = worse)."""
        sign = 1.0 if self.greater_is_better else -1.0
        return [sign * (self.baseline - m) for m in self.metric[layer]]

    def _curve(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """(sparsity, running-max drop) from (0, 0), sorted by sparsity."""
        x = np.asarray([0.0, *self.achieved[layer]], dtype=np.float64)
        d = np.asarray([0.0, *self.drop(layer)], dtype=np.float64)
        order = np.argsort(x, kind="stable")
        return x[order], np.maximum.accumulate(d[order])

    def overall(self, sparsities: dict[str, float]) -> float:
        """Fraction of zeros over the scanned layers for per-layer `sparsities`."""
        total = sum(self.sizes[n] for n in self.layers)
        return sum(self.sizes[n] * sparsities.get(n, 0.0) for n in self.layers) / total

    def _at_tolerance(self, tol: float) -> dict[str, float]:
        out = {}
        for n in self.layers:
            x, env = self._curve(n)
            out[n] = float(x[env <= tol + 1e-12].max())
        return out

    def _at_drop(self, delta: float) -> dict[str, float]:
        """Per layer, the largest sparsity whose (interpolated) envelope stays <= delta."""
        out = {}
        for n in self.layers:
            x, env = self._curve(n)
            ok = np.nonzero(env <= delta + 1e-12)[0]
            i = int(ok.max())
            s = x[i]
            if i + 1 < len(x) and env[i + 1] > env[i]:
                s += (x[i + 1] - x[i]) * (delta - env[i]) / (env[i + 1] - env[i])
            out[n] = float(min(s, x[-1]))
        return out

    def suggest(
        self, *, target: float | None = None, tolerance: float | None = None
    ) -> dict[str, float]:
        """Per-layer sparsities.

        - `tolerance` only: for each layer the largest scanned sparsity whose drop <= tolerance.
        - `target` only: every layer pruned to the same metric drop, the smallest drop whose
          overall sparsity (over the scanned layers) reaches `target` (linear interpolation
          between scanned points; never beyond the largest scanned sparsity).
        - both: the tolerance allocation scaled by one factor (each layer capped at its
          largest scanned sparsity) so that the overall sparsity equals `target`.
        """
        if target is None and tolerance is None:
            raise ValueError("suggest needs target= (overall sparsity) and/or tolerance=")
        if tolerance is not None and not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        if target is not None and not 0 <= target < 1:
            raise ValueError(f"target must be a sparsity in [0, 1), got {target}")
        if not self.layers:
            raise ValueError("the scan holds no layers")
        caps = {n: self._curve(n)[0][-1] for n in self.layers}
        reachable = self.overall(caps)
        if target is not None and target > reachable + 1e-12:
            raise ValueError(
                f"target {target} is out of reach: the scanned grid allows at most "
                f"{reachable:.4f} over these layers; scan higher sparsities"
            )
        if tolerance is not None:
            base = self._at_tolerance(tolerance)
            if target is None:
                return base
            if self.overall(base) == 0:
                raise ValueError(
                    f"no layer stays within tolerance {tolerance}; raise it, or call "
                    "suggest(target=...) alone"
                )
            return self._round(self._scaled(base, caps, target))
        return self._round(self._equal_drop(target or 0.0))

    def _scaled(self, base: dict[str, float], caps: dict[str, float], target: float) -> dict:
        def alloc(c: float) -> dict[str, float]:
            return {n: min(c * base[n], caps[n]) for n in self.layers}

        lo, hi = 0.0, 1.0
        while self.overall(alloc(hi)) < target and hi < 1e6:
            hi *= 2
        if self.overall(alloc(hi)) < target - 1e-9:
            raise ValueError(
                f"target {target} is out of reach by scaling the layers that stay within "
                "tolerance; call suggest(target=...) alone"
            )
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.overall(alloc(mid)) < target else (lo, mid)
        return alloc(hi)

    def _equal_drop(self, target: float) -> dict[str, float]:
        top = max(float(self._curve(n)[1][-1]) for n in self.layers)
        lo, hi = 0.0, max(top, 0.0)
        if self.overall(self._at_drop(lo)) >= target:
            hi = lo
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.overall(self._at_drop(mid)) < target else (lo, mid)
        alloc = self._at_drop(hi)
        got = self.overall(alloc)
        scale = target / got if got > 0 else 0.0
        return {n: s * min(1.0, scale) for n, s in alloc.items()}

    @staticmethod
    def _round(d: dict[str, float]) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in d.items()}

    def rows(self) -> list[dict[str, Any]]:
        """One row per (layer, grid value): the long format that plotting tools like."""
        out = []
        for n in self.layers:
            drops = self.drop(n)
            for i, v in enumerate(self.grid):
                out.append(
                    {
                        "layer": n,
                        "params": self.sizes[n],
                        self.kind: v,
                        "achieved_sparsity": self.achieved[n][i],
                        self.metric_name: self.metric[n][i],
                        "drop": drops[i],
                    }
                )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "grid": list(self.grid),
            "baseline": self.baseline,
            "metric": self.metric_name,
            "greater_is_better": self.greater_is_better,
            "layers": [
                {
                    "name": n,
                    "params": self.sizes[n],
                    "metric": self.metric[n],
                    "achieved_sparsity": self.achieved[n],
                    "drop": self.drop(n),
                }
                for n in self.layers
            ],
        }

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The rows as CSV text; written atomically to `path` when given."""
        buf = io.StringIO()
        rows = self.rows()
        fields = ["layer", "params", self.kind, "achieved_sparsity", self.metric_name, "drop"]
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
        if path is not None:
            write_text_atomic(path, text)
        return text


def _loader(data: Any) -> Iterable:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, tuple | list) and len(data) == 2:
        return DataLoader(as_dataset(data), batch_size=512)
    if hasattr(data, "__iter__"):
        return data
    raise TypeError("data must be a DataLoader, an iterable of batches or a pair (x, y)")


def sensitivity_scan(
    model: nn.Module,
    data: Any,
    *,
    sparsities: Sequence[float] | None = DEFAULT_SPARSITIES,
    thresholds: Sequence[float] | None = None,
    layers: Sequence[str] | None = None,
    criterion: str = "magnitude",
    metric: Callable[[nn.Module, Iterable], float] = accuracy,
    metric_name: str | None = None,
    greater_is_better: bool = True,
    calibration: Iterable | None = None,
    progress: bool = False,
) -> SensitivityResult:
    """Prune each layer alone (on a copy; `model` is not changed) at each grid value.

    - `data`: validation batches (a DataLoader or a pair of tensors).
    - `sparsities` (default 0.1..0.95) or `thresholds` (|w| < t removed) form the grid.
    - `layers`: parameter names or glob patterns (default: every prunable weight that
      ``prune.unstructured_`` would choose by default).
    - `calibration`: batches for criteria that need gradients (taylor, snip).
    """
    from secateurs import prune
    from secateurs.prune.targets import find_targets

    if thresholds is not None:
        kind, grid = "threshold", [float(t) for t in thresholds]
        if any(not t >= 0 for t in grid):
            raise ValueError(f"thresholds must be >= 0, got {list(thresholds)}")
    elif sparsities is not None:
        kind, grid = "sparsity", [float(s) for s in sparsities]
        if any(not 0 <= s < 1 for s in grid):
            raise ValueError(f"sparsities must lie in [0, 1), got {list(sparsities)}")
    else:
        raise ValueError("give sparsities= or thresholds= as the grid")
    if not grid:
        raise ValueError(f"the {kind} grid is empty")
    loader = _loader(data)
    targets = (
        find_targets(model, include=list(layers), exclude=[]) if layers else find_targets(model)
    )
    if not targets:
        raise ValueError("no prunable layer found (check layers=)")
    result = SensitivityResult(
        kind=kind,
        grid=grid,
        baseline=float(metric(model, loader)),
        metric_name=metric_name or getattr(metric, "__name__", "metric"),
        greater_is_better=greater_is_better,
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(targets) * len(grid), desc="sensitivity", unit="point", leave=False)
    try:
        for t in targets:
            result.layers.append(t.name)
            result.sizes[t.name] = t.numel()
            result.metric[t.name], result.achieved[t.name] = [], []
            for v in grid:
                pruned = copy.deepcopy(model)
                amount = {"threshold": v, "force": True} if kind == "threshold" else {"sparsity": v}
                report = prune.unstructured_(
                    pruned,
                    scope="layer",
                    criterion=criterion,
                    include=[t.name],
                    exclude=[],
                    data=calibration,
                    **amount,
                )
                result.metric[t.name].append(float(metric(pruned, loader)))
                result.achieved[t.name].append(float(report[t.name].sparsity))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return result
