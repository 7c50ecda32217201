"""The search space: every grid point, or one Optuna suggestion, as flat parameters.

A candidate is a flat dict of plain values (what Optuna stores per trial), for example
``{"method": "unstructured", "sparsity": 0.8, "scope": "global", "criterion": "magnitude",
"schedule": "one_shot", "clip_rule": "none"}``. Parameters that do not apply (a threshold
for the rule 'none', a ratio for unstructured pruning) are left out, so the grid holds no
duplicates.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from secateurs.search.config import FloatRange, Space, float_values, parse_nm
from secateurs.search.recipe import ClipSetting, PruneSetting, Recipe

Thresholds = Mapping[str, Sequence[float]] | None  # suggested thresholds per clip rule


def _prune_choices(space: Space) -> list[dict[str, Any]]:
    p = space.prune
    out: list[dict[str, Any]] = []
    for method in p.method:
        if method == "none":
            out.append({"method": "none"})
        elif method == "unstructured":
            key, values = (
                ("sparsity", float_values(p.sparsity))
                if p.sparsity is not None
                else ("threshold", float_values(p.threshold))
            )
            for v, crit, scope, sched in itertools.product(
                values or [], p.criterion, p.scope, p.schedule
            ):
                out.append(
                    {
                        "method": method,
                        key: v,
                        "criterion": crit,
                        "scope": scope,
                        "schedule": sched,
                    }
                )
        elif method == "nm":
            for nm, crit in itertools.product(p.nm, p.criterion):
                out.append({"method": method, "nm": nm, "criterion": crit})
        else:
            for r, imp in itertools.product(float_values(p.ratio) or [], p.importance):
                out.append({"method": method, "ratio": r, "importance": imp})
    return out


def threshold_name(space: Space, rule: str) -> str:
    """The parameter name of a rule's threshold: one shared list, or one list per rule when
    the thresholds are suggested (norms and per-element values differ in scale)."""
    return f"clip_threshold_{rule}" if space.clip.threshold == "suggest" else "clip_threshold"


def _suggested(clip_thresholds: Thresholds, rule: str) -> list[float]:
    values = (clip_thresholds or {}).get(rule)
    if not values:
        raise ValueError(f"no suggested clipping thresholds for rule {rule!r}")
    return [float(v) for v in values]


def _clip_choices(space: Space, clip_thresholds: Thresholds) -> list[dict[str, Any]]:
    c = space.clip
    out: list[dict[str, Any]] = []
    for rule in c.rule:
        if rule == "none":
            out.append({"clip_rule": "none"})
            continue
        if c.threshold == "suggest":
            values = _suggested(clip_thresholds, rule)
        else:
            values = float_values(c.threshold) or []
        name = threshold_name(space, rule)
        out.extend({"clip_rule": rule, name: t} for t in values)
    return out


def grid_points(space: Space, clip_thresholds: Thresholds = None) -> list[dict]:
    """Every combination in the space, in a fixed order (pruning choices, then clipping)."""
    points = [
        {**p, **c}
        for p, c in itertools.product(_prune_choices(space), _clip_choices(space, clip_thresholds))
    ]
    if not points:
        raise ValueError("the search space is empty: give at least one value for each setting")
    return points


def _suggest_float(trial: Any, name: str, sp: Any) -> float:
    if isinstance(sp, FloatRange):
        if sp.step is not None:
            return float(trial.suggest_float(name, sp.low, sp.high, step=sp.step))
        return float(trial.suggest_float(name, sp.low, sp.high, log=sp.log))
    return float(trial.suggest_categorical(name, float_values(sp)))


def suggest(trial: Any, space: Space, clip_thresholds: Thresholds = None) -> dict:
    """Ask an Optuna trial for one candidate (define-by-run: only the applicable parameters)."""
    p, c = space.prune, space.clip
    params: dict[str, Any] = {"method": trial.suggest_categorical("method", list(p.method))}
    method = params["method"]
    if method == "unstructured":
        if p.sparsity is not None:
            params["sparsity"] = _suggest_float(trial, "sparsity", p.sparsity)
        else:
            params["threshold"] = _suggest_float(trial, "threshold", p.threshold)
        params["criterion"] = trial.suggest_categorical("criterion", list(p.criterion))
        params["scope"] = trial.suggest_categorical("scope", list(p.scope))
        params["schedule"] = trial.suggest_categorical("schedule", list(p.schedule))
    elif method == "nm":
        params["nm"] = trial.suggest_categorical("nm", list(p.nm))
        params["criterion"] = trial.suggest_categorical("criterion", list(p.criterion))
    elif method == "structured":
        params["ratio"] = _suggest_float(trial, "ratio", p.ratio)
        params["importance"] = trial.suggest_categorical("importance", list(p.importance))
    rule = trial.suggest_categorical("clip_rule", list(c.rule))
    params["clip_rule"] = rule
    if rule != "none":
        name = threshold_name(space, rule)
        if c.threshold == "suggest":
            choices = _suggested(clip_thresholds, rule)
            params[name] = float(trial.suggest_categorical(name, choices))
        else:
            params[name] = _suggest_float(trial, name, c.threshold)
    return params


def to_recipe(params: dict[str, Any], finetune_steps: int = 0, **source: Any) -> Recipe:
    """The Recipe that a flat candidate dict describes."""
    prune_kwargs: dict[str, Any] = {
        k: params[k]
        for k in ("method", "sparsity", "threshold", "criterion", "scope", "schedule", "ratio")
        if k in params
    }
    if "importance" in params:
        prune_kwargs["importance"] = params["importance"]
    if "nm" in params:
        prune_kwargs["n"], prune_kwargs["m"] = parse_nm(params["nm"])
    rule = params.get("clip_rule", "none")
    threshold = params.get("clip_threshold", params.get(f"clip_threshold_{rule}"))
    clip = ClipSetting(rule=rule, threshold=threshold)
    return Recipe(
        prune=PruneSetting(**prune_kwargs),
        clip=clip,
        finetune_steps=finetune_steps,
        source=dict(source),
    )
