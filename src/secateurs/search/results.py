"""A study's results as rows, a printed table, CSV, JSON and the best setting's recipe."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from secateurs.io.atomic import write_text_atomic
from secateurs.search.config import SweepConfig
from secateurs.search.recipe import save_recipe
from secateurs.search.space import to_recipe
from secateurs.search.study import ATTR_CONFIG, ATTR_DENSE, best_setting

PARAM_ORDER = (
    "method",
    "sparsity",
    "threshold",
    "criterion",
    "scope",
    "schedule",
    "nm",
    "ratio",
    "importance",
    "clip_rule",
    "clip_threshold",
    "clip_threshold_norm",
    "clip_threshold_value",
)
FIGURES = (
    "metric_mean",
    "metric_std",
    "dense_mean",
    "drop",
    "feasible",
    "achieved_sparsity",
    "nonzeros",
    "macs",
    "latency_ms",
    "seconds",
)


def stored_config(study: Any) -> SweepConfig | None:
    """The configuration a secateurs study was created with (None for foreign studies)."""
    data = study.user_attrs.get(ATTR_CONFIG)
    return SweepConfig.model_validate(data) if data is not None else None


def trial_rows(study: Any, *, complete_only: bool = False) -> list[dict[str, Any]]:
    """One flat dict per trial: number, state, parameters, figures."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if complete_only and t.state.name != "COMPLETE":
            continue
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        params = dict(t.params)
        row.update({k: params[k] for k in PARAM_ORDER if k in params})
        row.update({k: v for k, v in params.items() if k not in PARAM_ORDER})
        result = t.user_attrs.get("result") or {}
        row.update({k: result.get(k) for k in FIGURES if k in result})
        if t.state.name == "COMPLETE":
            row["setting"] = _setting(row)
        if "skipped" in t.user_attrs:
            row["note"] = t.user_attrs["skipped"]
        rows.append(row)
    return rows


def pareto_trials(study: Any) -> list[Any]:
    """The non-dominated completed trials of a multi-objective study ([] otherwise)."""
    if len(study.directions) < 2:
        return []
    return sorted(study.best_trials, key=lambda t: t.values[1])


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    return cols


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_columns(rows) or ["trial"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def _setting(row: dict[str, Any]) -> str:
    method = row.get("method", "?")
    if method == "none":
        text = "dense"
    elif method == "unstructured":
        amount = f"{row['sparsity']:.2f}" if "sparsity" in row else f"|w|<{row['threshold']:g}"
        text = f"{amount} {row.get('scope', '')} {row.get('criterion', '')}".strip()
        if row.get("schedule", "one_shot") != "one_shot":
            text += f" {row['schedule']}"
    elif method == "nm":
        text = f"{row.get('nm')} {row.get('criterion', '')}".strip()
    else:
        text = f"structured {row.get('ratio'):.2f} {row.get('importance', '')}".strip()
    rule = row.get("clip_rule", "none")
    if rule != "none":
        t = row.get("clip_threshold", row.get(f"clip_threshold_{rule}"))
        text += f" + clip {rule} {t:g}"
    return text


def summary(study: Any) -> dict[str, Any]:
    """Dense baseline, best setting, Pareto front and all trials, JSON-ready."""
    config = stored_config(study)
    tol = config.objective.tolerance if config else 0.0
    best = best_setting(study, tol)
    rows = trial_rows(study)
    by_number = {r["trial"]: r for r in rows}
    return _json_safe(
        {
            "study": study.study_name,
            "dense": study.user_attrs.get(ATTR_DENSE),
            "tolerance": tol,
            "config": study.user_attrs.get(ATTR_CONFIG),
            "best": by_number.get(best.number) if best is not None else None,
            "pareto": [by_number[t.number] for t in pareto_trials(study)],
            "trials": rows,
        }
    )


def best_recipe(study: Any) -> Any:
    """The Recipe of the best setting (None when no trial stayed within tolerance)."""
    config = stored_config(study)
    if config is None:
        return None
    best = best_setting(study, config.objective.tolerance)
    if best is None:
        return None
    r = best.user_attrs["result"]
    return to_recipe(
        dict(best.params),
        finetune_steps=config.budget.finetune_steps,
        study=study.study_name,
        trial=best.number,
        metric=config.objective.metric,
        metric_mean=r["metric_mean"],
        metric_std=r["metric_std"],
        dense_mean=r["dense_mean"],
        achieved_sparsity=r["achieved_sparsity"],
        evaluation=(
            f"{config.evaluation.k}-fold" if config.evaluation.kind == "kfold" else "holdout"
        ),
    )


def write_results(study: Any, out_dir: str | Path) -> dict[str, Path]:
    """Write trials.csv, results.json, pareto.csv (multi-objective), best-recipe.yaml and
    report.html (when matplotlib, the `report` extra, is installed)."""
    out = Path(out_dir)
    data = summary(study)
    paths = {
        "csv": write_text_atomic(out / "trials.csv", rows_to_csv(data["trials"])),
        "json": write_text_atomic(out / "results.json", json.dumps(data, indent=2) + "\n"),
    }
    if data["pareto"]:
        paths["pareto"] = write_text_atomic(out / "pareto.csv", rows_to_csv(data["pareto"]))
    recipe = best_recipe(study)
    if recipe is not None:
        paths["recipe"] = save_recipe(recipe, out / "best-recipe.yaml")
    from secateurs.report import write_report
    from secateurs.report.documents import sweep_document

    config = stored_config(study)
    higher = config is None or config.objective.metric == "accuracy"
    try:
        paths["report"] = write_report(
            sweep_document(data, higher_is_better=higher), out / "report.html"
        ).html
    except ImportError as e:
        if (e.name or "").split(".")[0] != "matplotlib":
            raise  # only the missing report extra skips the report
    return paths


def render_table(study: Any, *, title: str | None = None) -> Any:
    """A rich Table of the completed trials, most compressed first; the best is marked '*'.

    `achieved` is the fraction of zeros over all parameters (biases and layers left dense
    included), so it is below the requested sparsity of the pruned layers.
    """
    from rich.table import Table

    config = stored_config(study)
    tol = config.objective.tolerance if config else 0.0
    best = best_setting(study, tol)
    front = {t.number for t in pareto_trials(study)}
    metric: str = config.objective.metric if config else "metric"
    if config is not None and config.evaluation.kind == "kfold":
        metric += f" ({config.evaluation.k}-fold)"
    table = Table(title=title)
    for col, justify in (
        ("trial", "right"),
        ("setting", "left"),
        (metric, "right"),
        ("Δ vs dense", "right"),
        ("achieved", "right"),
        ("nonzeros", "right"),
        ("ok", "center"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    rows = trial_rows(study, complete_only=True)
    rows.sort(key=lambda r: (-(r.get("achieved_sparsity") or 0.0), r["trial"]))
    for r in rows:
        mark = ""
        if best is not None and r["trial"] == best.number:
            mark = "*"
        elif r["trial"] in front:
            mark = "pareto"
        table.add_row(
            str(r["trial"]) + (f" {mark}" if mark else ""),
            _setting(r),
            f"{r['metric_mean']:.4f} ± {r['metric_std']:.4f}",
            # the same sign as the demo's "Δ vs base": the setting's metric minus the dense one
            f"{r['metric_mean'] - r['dense_mean']:+.4f}",
            f"{r['achieved_sparsity']:.3f}",
            f"{r['nonzeros']:,.0f}",
            "yes" if r.get("feasible") else "no",
        )
    return table
