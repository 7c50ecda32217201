"""The results document that `secateurs compare` and `secateurs demo` write and
`secateurs report` reads, and the aggregation over seeds shown in the report.

A results document is a JSON object::

    {"schema": "secateurs.results/1", "title": str, "created": str,
     "environment": {...}, "config": {...}, "notes": [str, ...],
     "runs":   [{"model", "variant", "seed", "metric", "higher_is_better", "value",
                 "metrics": {...}, "params", "nonzeros", "macs", "file_bytes",
                 "latency_ms", "steps_to_target", "loss_spikes", "nonfinite_steps",
                 "clip_rate", "train_seconds", "paired_speedup", "paired_speedup_q1",
                 "paired_speedup_q3"}, ...],
     "curves": [{"model", "name", "x_label", "y_label", "x": [...], "y": [...],
                 "y_err": [...] | null, "kind": "sparsity" | "sensitivity" | ...}, ...],
     "layers": [{"model", "variant", "layer", "params", "nonzeros"}, ...],
     "traces": [{"model", "variant", "seed", "grad_norm": [...], "loss": [...],
                 "threshold": float | null, "clipped_steps": [int, ...]}, ...]}

"paired_speedup*" is `secateurs.measure.compare_latency` against the model's baseline, timed
interleaved with it (median ratio and quartiles); where present it is the speed-up shown.
Only "runs" is required; any measure may be null where it does not apply (a run that was
not possible records why in "metrics"/"error").
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA = "secateurs.results/1"
RUN_KEYS = ("model", "variant", "seed", "metric", "value")
MEASURES = (
    "value",
    "params",
    "nonzeros",
    "macs",
    "file_bytes",
    "latency_ms",
    "steps_to_target",
    "loss_spikes",
    "nonfinite_steps",
    "clip_rate",
    "train_seconds",
    "paired_speedup",
    "paired_speedup_q1",
    "paired_speedup_q3",
)


def validate(results: Mapping[str, Any]) -> dict[str, Any]:
    """Check the shape of a results document and return it as a plain dict.

    Raises ValueError naming the first missing or malformed field.
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping (a parsed JSON object), got {type(results)}")
    schema = results.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise ValueError(f"results schema {schema!r} is not supported; expected {SCHEMA!r}")
    runs = results.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ValueError("results['runs'] must be a non-empty list of runs")
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise ValueError(f"results['runs'][{i}] must be an object")
        for key in RUN_KEYS:
            if key not in run:
                raise ValueError(f"results['runs'][{i}] lacks the field {key!r}")
    for section in ("curves", "layers", "traces", "notes"):
        if section in results and not isinstance(results[section], list):
            raise ValueError(f"results[{section!r}] must be a list")
    for i, c in enumerate(results.get("curves", [])):
        if len(c.get("x", [])) != len(c.get("y", [])):
            raise ValueError(f"results['curves'][{i}]: x and y differ in length")
        if c.get("y_err") is not None and len(c["y_err"]) != len(c["y"]):
            raise ValueError(f"results['curves'][{i}]: y_err and y differ in length")
    return dict(results)


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a results JSON file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"results file {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(p)!r} is not valid JSON: {e}") from None
    return validate(data)


def finite(x: Any) -> float | None:
    """`x` as a float, or None when missing or not finite."""
    if x is None or isinstance(x, bool):
        return None if x is None else float(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def mean_std(values: Iterable[Any]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (0 for one value) and count of the finite values."""
    xs = [v for v in (finite(x) for x in values) if v is not None]
    if not xs:
        return None, None, 0
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)


def group_runs(runs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Runs grouped by (model, variant), in first-seen order."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault((str(r["model"]), str(r["variant"])), []).append(r)
    return groups


def summarize(results: Mapping[str, Any], baseline: str | None = None) -> list[dict[str, Any]]:
    """One row per (model, variant): mean and std over seeds of every measure, plus
    compression (baseline non-zeros / non-zeros) and speed-up (baseline latency / latency)
    against the model's baseline variant when it exists: `baseline`, else the document's
    "baseline_variant", else "baseline"."""
    baseline = baseline or str(results.get("baseline_variant") or "baseline")
    groups = group_runs(results["runs"])
    rows = []
    for (model, variant), runs in groups.items():
        row: dict[str, Any] = {
            "model": model,
            "variant": variant,
            "metric": runs[0]["metric"],
            "higher_is_better": bool(runs[0].get("higher_is_better", True)),
            "is_baseline": variant == baseline,
            "seeds": len(runs),
            "failed": sum(1 for r in runs if r.get("error")),
        }
        for m in MEASURES:
            mean, std, n = mean_std(r.get(m) for r in runs)
            # one value has no spread to report
            row[f"{m}_mean"], row[f"{m}_std"] = mean, (std if n > 1 else None)
        params = row["params_mean"]
        nz = row["nonzeros_mean"]
        row["sparsity"] = (1 - nz / params) if params and nz is not None else None
        rows.append(row)
    base = {r["model"]: r for r in rows if r["is_baseline"]}
    for row in rows:
        b = base.get(row["model"])
        row["compression"] = _ratio(b and b["nonzeros_mean"], row["nonzeros_mean"])
        row["speedup"] = _ratio(b and b["latency_ms_mean"], row["latency_ms_mean"])
        row["speedup_within_noise"] = None
        if not row["is_baseline"] and row["paired_speedup_mean"] is not None:
            # timed interleaved with the baseline: the honest figure, and its spread
            row["speedup"] = row["paired_speedup_mean"]
            q1, q3 = row["paired_speedup_q1_mean"], row["paired_speedup_q3_mean"]
            row["speedup_within_noise"] = q1 is not None and q3 is not None and q1 <= 1 <= q3
        row["size_ratio"] = _ratio(b and b["file_bytes_mean"], row["file_bytes_mean"])
        bv, v = (b or {}).get("value_mean"), row["value_mean"]
        row["delta_vs_baseline"] = v - bv if v is not None and bv is not None else None
    return rows


def _ratio(num: Any, den: Any) -> float | None:
    a, b = finite(num), finite(den)
    return a / b if a is not None and b else None


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points not dominated in (cost: lower is better, metric)."""
    front = []
    for i, (c, m) in enumerate(points):
        dominated = False
        for j, (c2, m2) in enumerate(points):
            if i == j:
                continue
            better_m = m2 >= m if higher_is_better else m2 <= m
            strictly = c2 < c or (m2 > m if higher_is_better else m2 < m)
            if c2 <= c and better_m and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return front
