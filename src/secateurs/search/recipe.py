"""One concrete setting (a candidate of a search, or its best result exported as a recipe).

A recipe YAML holds the pruning settings that `secateurs prune recipe MODEL FILE` applies, the
clipping rule used while (re)training, the fine-tuning budget, and where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from secateurs.io.atomic import write_text_atomic
from secateurs.io.bounded import safe_load_yaml
from secateurs.search.config import ClipRule, PruneMethod, Schedule, Scope


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PruneSetting(_Strict):
    """How to prune: unstructured (sparsity or threshold), N:M, structured ratio, or none."""

    method: PruneMethod = "unstructured"
    sparsity: float | None = Field(default=None, ge=0, lt=1)
    threshold: float | None = Field(default=None, ge=0)
    criterion: str = "magnitude"
    scope: Scope = "global"
    schedule: Schedule = "one_shot"
    n: int = Field(default=2, ge=1)
    m: int = Field(default=4, ge=2)
    ratio: float | None = Field(default=None, ge=0, lt=1)
    importance: str = "l2"

    @model_validator(mode="after")
    def _check(self) -> PruneSetting:
        if self.method == "unstructured" and (self.sparsity is None) == (self.threshold is None):
            raise ValueError("unstructured pruning needs exactly one of sparsity or threshold")
        if self.method == "structured" and self.ratio is None:
            raise ValueError("structured pruning needs a ratio")
        if self.method == "nm" and not self.n < self.m:
            raise ValueError(f"N:M pruning needs n < m, got {self.n}:{self.m}")
        return self

    def label(self) -> str:
        """A short human-readable description, e.g. 'unstructured 0.80 global magnitude'."""
        if self.method == "none":
            return "dense"
        if self.method == "nm":
            return f"{self.n}:{self.m} {self.criterion}"
        if self.method == "structured":
            return f"structured ratio {self.ratio:g} {self.importance}"
        amount = f"{self.sparsity:g}" if self.sparsity is not None else f"|w|<{self.threshold:g}"
        return f"{amount} {self.scope} {self.criterion}"


class ClipSetting(_Strict):
    """A gradient-clipping rule and its one parameter (see `make_clip_rule`)."""

    rule: ClipRule = "none"
    threshold: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ClipSetting:
        if self.rule != "none" and self.threshold is None:
            raise ValueError(f"clip rule {self.rule!r} needs a threshold")
        return self


class Recipe(_Strict):
    """A setting to apply: pruning, the clipping rule for training, fine-tuning steps."""

    version: Literal[1] = 1
    prune: PruneSetting = Field(default_factory=lambda: PruneSetting(method="none"))
    clip: ClipSetting = Field(default_factory=ClipSetting)
    finetune_steps: int = Field(default=0, ge=0)
    source: dict[str, Any] = Field(default_factory=dict)


def make_clip_rule(setting: ClipSetting) -> Any:
    """The secateurs.clip rule for a setting (None for 'none'): `clip.RULES` names the class."""
    from secateurs import clip

    t = None if setting.threshold is None else float(setting.threshold)
    return clip.make_rule(setting.rule, t)


def _none(model: nn.Module, setting: PruneSetting, **_: Any) -> tuple[nn.Module, Any]:
    return model, None


def _unstructured(
    model: nn.Module, setting: PruneSetting, *, data: Any, sparsity: float | None, **_: Any
) -> tuple[nn.Module, Any]:
    from secateurs import prune

    s = setting.sparsity if sparsity is None else sparsity
    kwargs: dict[str, Any] = {"scope": setting.scope, "criterion": setting.criterion}
    if data is not None:
        kwargs["data"] = data
    if s is not None:
        return model, prune.unstructured_(model, sparsity=s, **kwargs)
    return model, prune.unstructured_(model, threshold=setting.threshold, **kwargs)


def _nm(model: nn.Module, setting: PruneSetting, *, data: Any, **_: Any) -> tuple[nn.Module, Any]:
    from secateurs import prune

    return model, prune.nm_(model, n=setting.n, m=setting.m, criterion=setting.criterion, data=data)


def _structured(
    model: nn.Module, setting: PruneSetting, *, example_inputs: Any, data: Any, **_: Any
) -> tuple[nn.Module, Any]:
    from secateurs import prune

    if example_inputs is None:
        raise ValueError("structured pruning needs example_inputs to trace the model")
    return prune.structured(
        model, example_inputs, ratio=setting.ratio, importance=setting.importance, data=data
    )


#: a recipe's `method` -> the operation that applies it (the one map from names to operations)
PRUNING_METHODS: dict[str, Callable[..., tuple[nn.Module, Any]]] = {
    "none": _none,
    "unstructured": _unstructured,
    "nm": _nm,
    "structured": _structured,
}


def apply_pruning(
    model: nn.Module,
    setting: PruneSetting,
    *,
    example_inputs: Any = None,
    data: Any = None,
    sparsity: float | None = None,
) -> tuple[nn.Module, Any]:
    """Prune `model` as `setting` says; returns (model, report).

    Unstructured and N:M prune in place (masks); structured pruning returns a new, smaller
    model and needs `example_inputs`. `sparsity` overrides the setting's (used by schedules).
    """
    method = PRUNING_METHODS[setting.method]
    return method(model, setting, example_inputs=example_inputs, data=data, sparsity=sparsity)


def apply_recipe(
    model: nn.Module, recipe: Recipe, *, example_inputs: Any = None, data: Any = None
) -> tuple[nn.Module, Any]:
    """Apply a recipe's pruning to `model`; returns (pruned model, pruning report)."""
    return apply_pruning(model, recipe.prune, example_inputs=example_inputs, data=data)


def recipe_caveat(recipe: Recipe) -> str | None:
    """A note when the recipe's validated result relied on training that pruning alone skips."""
    parts = []
    if recipe.finetune_steps:
        parts.append(f"{recipe.finetune_steps} fine-tuning steps")
    if recipe.prune.schedule != "one_shot":
        parts.append(f"a {recipe.prune.schedule} schedule")
    if not parts:
        return None
    return (
        f"note: this recipe was validated with {' and '.join(parts)}; "
        "`secateurs prune` applies the pruning in one shot (fine-tune afterwards)"
    )


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe YAML (safe loader); errors name the file and field."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"recipe file not found: {p}")
    try:
        data = safe_load_yaml(p.read_text(encoding="utf-8"))  # bounded aliases and depth
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: malformed YAML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a recipe must be a mapping with a 'prune' section")
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        errs = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '(top level)'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise ValueError(f"{p}: {errs}") from None


def save_recipe(recipe: Recipe, path: str | os.PathLike) -> Path:
    """Write a recipe as YAML (atomically)."""
    data = recipe.model_dump(mode="json")
    text = "# secateurs recipe: apply with `secateurs prune recipe MODEL THIS_FILE -o OUT`\n"
    text += yaml.safe_dump(data, sort_keys=False)
    return write_text_atomic(path, text)
