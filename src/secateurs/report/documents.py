"""Results documents (the format `write_report` reads) for the commands that keep their own
JSON: `secateurs sweep` (a study's summary) and `secateurs demo clipping` (the exploding-gradient
experiment). Plain data in, plain data out, so the report needs nothing from the search or the
experiment code."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from secateurs.report.results import SCHEMA


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sweep_document(summary: Mapping[str, Any], *, higher_is_better: bool) -> dict[str, Any]:
    """A results document from `secateurs.search.results.summary(study)`: one run per
    completed trial (the dense baseline first) and, per pruning method, the validated metric
    against the achieved sparsity with the tolerance line and the chosen trial marked."""
    config = summary.get("config") or {}
    objective = config.get("objective") or {}
    metric = str(objective.get("metric", "metric"))
    model = str(config.get("model", "model"))
    dense = summary.get("dense") or {}
    tol = float(summary.get("tolerance") or 0.0)
    trials = [t for t in summary.get("trials", []) if t.get("state") == "COMPLETE"]
    base = {"model": model, "seed": 0, "metric": metric, "higher_is_better": higher_is_better}
    runs = []
    if dense.get("mean") is not None:
        runs.append(
            {
                **base,
                "variant": "dense",
                "value": dense["mean"],
                "params": dense.get("params"),
                "nonzeros": dense.get("params"),
            }
        )
    for t in trials:
        runs.append(
            {
                **base,
                "variant": f"#{t['trial']} {t.get('setting', '')}".strip(),
                "value": t.get("metric_mean"),
                "metrics": {f"{metric}_std": t.get("metric_std")},
                "nonzeros": t.get("nonzeros"),
                "macs": t.get("macs"),
                "latency_ms": t.get("latency_ms"),
            }
        )
    best = summary.get("best") or {}
    curves = []
    reference = None
    if dense.get("mean") is not None:
        reference = dense["mean"] - tol if higher_is_better else dense["mean"] + tol
    for method in dict.fromkeys(str(t.get("method", "")) for t in trials):
        pts = sorted(
            (t for t in trials if str(t.get("method", "")) == method),
            key=lambda t: t.get("achieved_sparsity") or 0.0,
        )
        if len(pts) < 2:
            continue
        curve: dict[str, Any] = {
            "model": model,
            "name": f"{method}: validated {metric}, mean ± std",
            "kind": "sparsity",
            "x_label": "achieved sparsity (all parameters)",
            "y_label": metric,
            "x": [t.get("achieved_sparsity") for t in pts],
            "y": [t.get("metric_mean") for t in pts],
            "y_err": [t.get("metric_std") for t in pts],
        }
        if reference is not None:
            curve["reference"] = reference
            curve["reference_label"] = f"dense {'-' if higher_is_better else '+'} tolerance"
        if best and str(best.get("method", "")) == method:
            curve["highlight_x"] = best.get("achieved_sparsity")
            curve["highlight_label"] = f"chosen: trial {best.get('trial')}"
        curves.append(curve)
    chosen = (
        f"The chosen setting is trial {best['trial']} ({best.get('setting', '')}), the most "
        f"compressed whose mean {metric} stays within {tol:g} of the dense model's."
        if best
        else f"No setting stayed within {tol:g} of the dense model's {metric}."
    )
    return {
        "schema": SCHEMA,
        "title": f"secateurs sweep: study {summary.get('study', '')}",
        "created": _now(),
        "config": {"study": summary.get("study"), "tolerance": tol, **config},
        "baseline_variant": "dense",
        "runs": runs or [{**base, "variant": "dense", "value": None}],
        "curves": curves,
        "notes": [
            f"Each trial's {metric} is the mean over the validation folds of models pruned "
            "with that setting; the dense model is trained the same way.",
            chosen,
        ],
    }


def clipping_document(data: Mapping[str, Any]) -> dict[str, Any]:
    """A results document from the exploding-gradient experiment's `Result.as_dict()`: one run
    per (rule, seed) with its test MSE (lower is better), clip rate and non-finite steps."""
    config = data.get("config") or {}
    runs = []
    for r in data.get("runs", []):
        mse = r.get("test_mse")
        steps = r.get("steps") or 0
        runs.append(
            {
                "model": f"tanh RNN, adding problem (length {config.get('length', '?')})",
                "variant": str(r["rule"]),
                "seed": r["seed"],
                "metric": "test MSE",
                "higher_is_better": False,
                "value": mse if isinstance(mse, int | float) and math.isfinite(mse) else None,
                "metrics": {"succeeded": float(bool(r.get("succeeded")))},
                "clip_rate": (r.get("clipped_steps") or 0) / steps if steps else None,
                "nonfinite_steps": r.get("nonfinite_steps"),
                "error": "diverged (non-finite weights)" if r.get("diverged") else None,
            }
        )
    return {
        "schema": SCHEMA,
        "title": "secateurs demo clipping: the exploding-gradient experiment",
        "created": _now(),
        "config": dict(config),
        "baseline_variant": "none",
        "runs": runs,
        "notes": [
            "Pascanu et al. (2013): a tanh RNN learns the adding problem with plain SGD. A run "
            f"succeeds when its test MSE is below {config.get('success_mse', '?')} (predicting "
            f"the mean gives {data.get('baseline_mse', '?')}).",
            "'succeeded' is the share of seeds that succeeded; a diverged run has no MSE and "
            "is listed with its error.",
        ],
    }
