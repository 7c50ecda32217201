"""The sweep configuration: YAML read with a safe loader and validated by pydantic.

Unknown keys are errors that name the field (``extra="forbid"``), so a typo never silently
falls back to a default. `load_config` turns every problem into a ValueError whose message
names the file and the field.

A config is a program: ``model``, ``data`` and ``trainer`` name Python functions that the
sweep imports and calls (as Hydra's ``_target_`` does), so run only configs you trust. What
it cannot do is exhaust memory before anything runs: the YAML's nesting and alias expansion
are bounded (`secateurs.io.bounded`), as are grid sizes, list lengths and step counts (errors
name the field), and a study name cannot point outside the output folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from secateurs.io.bounded import safe_load_yaml

PruneMethod = Literal["none", "unstructured", "nm", "structured"]
Scope = Literal["global", "layer"]
Schedule = Literal["one_shot", "iterative", "cubic"]
ClipRule = Literal["none", "value", "norm", "agc", "autoclip", "zclip"]

MAX_RANGE_VALUES = 10_000  # values one stepped range may hold
MAX_LIST = 1_000  # values one list may hold
MAX_GRID_POINTS = 100_000  # settings one grid may hold
MAX_STEPS = 10_000_000  # training / fine-tuning / warm-up steps
MAX_TRIALS = 100_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatRange(_Strict):
    """A range `low..high`; with `step` it is also a grid; `log` samples log-uniformly."""

    low: float
    high: float
    step: float | None = Field(default=None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("use either log or step, not both")
        if self.step is not None and (self.high - self.low) / self.step + 1 > MAX_RANGE_VALUES:
            raise ValueError(
                f"step {self.step} makes {(self.high - self.low) / self.step + 1:.3g} values "
                f"(at most {MAX_RANGE_VALUES:,}); use a larger step"
            )
        return self

    def grid(self) -> list[float] | None:
        """The grid values low, low+step, ..., high (None without a step)."""
        if self.step is None:
            return None
        n = math.floor((self.high - self.low) / self.step + 1e-9)
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


def _to_space(v: Any) -> Any:
    """Dispatch on the YAML shape so that errors speak of one form, not of a union."""
    if v is None or isinstance(v, FloatRange):
        return v
    if isinstance(v, dict):
        return FloatRange.model_validate(v)
    if isinstance(v, list):
        if len(v) > MAX_LIST:
            raise ValueError(f"a list of {len(v)} values (at most {MAX_LIST:,})")
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
            raise ValueError(f"a list of values must hold numbers, got {v}")
        return [float(x) for x in v]
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    raise ValueError(
        f"expected a number, a list of numbers or a range {{low, high, step}}, got {v!r}"
    )


FloatSpace = Annotated[Any, BeforeValidator(_to_space)]


def float_values(space: FloatSpace | None) -> list[float] | None:
    """The discrete values of a space (a list, a single value or a stepped range), else None."""
    if space is None:
        return None
    if isinstance(space, FloatRange):
        return space.grid()
    if isinstance(space, list):
        return list(space)
    return [float(space)]


def _check_space(name: str, space: FloatSpace | None, low: float, high: float, high_open: bool):
    """Check every value (or the bounds) of `space` lie in [low, high) or [low, high]."""
    if space is None:
        return space
    if isinstance(space, list) and not space:
        raise ValueError(f"{name}: the list of values is empty")
    values = list(space.bounds()) if isinstance(space, FloatRange) else float_values(space)
    for v in values or []:
        ok = low <= v < high if high_open else low <= v <= high
        if not ok or not math.isfinite(v):
            bracket = ")" if high_open else "]"
            raise ValueError(f"{name}: {v} is outside [{low}, {high}{bracket}")
    return space


class PruneSpace(_Strict):
    """The pruning settings to try. Lists are choices; `{low, high, step}` is a range."""

    method: list[PruneMethod] = Field(
        default_factory=lambda: ["unstructured"], min_length=1, max_length=MAX_LIST
    )
    sparsity: FloatSpace | None = None
    threshold: FloatSpace | None = None
    criterion: list[str] = Field(
        default_factory=lambda: ["magnitude"], min_length=1, max_length=MAX_LIST
    )
    scope: list[Scope] = Field(default_factory=lambda: ["global"], min_length=1)
    schedule: list[Schedule] = Field(default_factory=lambda: ["one_shot"], min_length=1)
    nm: list[str] = Field(default_factory=lambda: ["2:4"], min_length=1, max_length=MAX_LIST)
    ratio: FloatSpace | None = None
    importance: list[str] = Field(default_factory=lambda: ["l2"], min_length=1, max_length=MAX_LIST)

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: FloatSpace | None) -> FloatSpace | None:
        return _check_space("sparsity", v, 0.0, 1.0, high_open=True)

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: FloatSpace | None) -> FloatSpace | None:
        return _check_space("ratio", v, 0.0, 1.0, high_open=True)

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: FloatSpace | None) -> FloatSpace | None:
        return _check_space("threshold", v, 0.0, math.inf, high_open=True)

    @field_validator("criterion")
    @classmethod
    def _criterion(cls, v: list[str]) -> list[str]:
        from secateurs.prune.criteria import get_criterion

        for name in v:
            get_criterion(name)  # raises ValueError listing the known criteria
        return v

    @field_validator("importance")
    @classmethod
    def _importance(cls, v: list[str]) -> list[str]:
        from secateurs.prune.structural.importance import CRITERIA

        unknown = [name for name in v if name not in CRITERIA]
        if unknown:
            raise ValueError(f"importance must be among {list(CRITERIA)}, got {unknown}")
        return v

    @field_validator("nm")
    @classmethod
    def _nm(cls, v: list[str]) -> list[str]:
        for s in v:
            parse_nm(s)
        return v

    @model_validator(mode="after")
    def _check(self) -> PruneSpace:
        if "unstructured" in self.method and (self.sparsity is None) == (self.threshold is None):
            raise ValueError("method 'unstructured' needs exactly one of sparsity or threshold")
        if "structured" in self.method and self.ratio is None:
            raise ValueError("method 'structured' needs a ratio (fraction of channels to remove)")
        return self


def parse_nm(text: str) -> tuple[int, int]:
    """Parse "n:m" (keep n of every m weights) into (n, m), checking 0 < n < m."""
    try:
        n_s, m_s = str(text).split(":")
        n, m = int(n_s), int(m_s)
    except ValueError:
        raise ValueError(f"nm: {text!r} must look like 'n:m', for example '2:4'") from None
    if not 0 < n < m:
        raise ValueError(f"nm: {text!r} needs 0 < n < m")
    return n, m


class ClipSuggest(_Strict):
    """How to derive clipping thresholds from a warm-up run's gradient norms."""

    steps: int = Field(default=50, ge=1, le=MAX_STEPS)
    percentiles: list[float] = Field(
        default_factory=lambda: [10.0, 50.0, 90.0], max_length=MAX_LIST
    )
    multipliers: list[float] = Field(
        default_factory=lambda: [0.5, 1.0, 2.0, 5.0, 10.0], max_length=MAX_LIST
    )

    @field_validator("percentiles")
    @classmethod
    def _pct(cls, v: list[float]) -> list[float]:
        if any(not 0 < p <= 100 for p in v):
            raise ValueError(f"percentiles must lie in (0, 100], got {v}")
        return v

    @field_validator("multipliers")
    @classmethod
    def _mult(cls, v: list[float]) -> list[float]:
        if any(not (m > 0 and math.isfinite(m)) for m in v):
            raise ValueError(f"multipliers must be positive, got {v}")
        return v


class ClipSpace(_Strict):
    """The gradient-clipping settings to try while training and fine-tuning.

    `threshold` is the rule's one parameter: value -> c, norm -> max_norm, agc -> clip
    ratio, autoclip -> percentile, zclip -> z. `threshold: suggest` derives max-norm / value
    thresholds from a warm-up run (see `suggest`).
    """

    rule: list[ClipRule] = Field(default_factory=lambda: ["none"], min_length=1)
    threshold: FloatSpace | Literal["suggest"] | None = None
    suggest: ClipSuggest = Field(default_factory=ClipSuggest)

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: Any) -> Any:
        if v == "suggest":
            return v
        v = _check_space("threshold", v, 0.0, math.inf, high_open=True)
        for t in float_values(v) or []:
            if t <= 0:
                raise ValueError(f"threshold: {t} must be > 0")
        return v

    @model_validator(mode="after")
    def _check(self) -> ClipSpace:
        active = [r for r in self.rule if r != "none"]
        if active and self.threshold is None:
            raise ValueError(f"rule {active} needs a threshold (values, a range or 'suggest')")
        if self.threshold == "suggest" and not set(active) <= {"norm", "value"}:
            raise ValueError("threshold 'suggest' derives norms, so it applies to rules norm/value")
        return self


class Space(_Strict):
    prune: PruneSpace
    clip: ClipSpace = Field(default_factory=ClipSpace)


class Evaluation(_Strict):
    """How each candidate is validated: k-fold cross-validation or one holdout split."""

    kind: Literal["kfold", "holdout"] = "kfold"
    k: int = Field(default=5, ge=2, le=100)
    val: float = Field(default=0.2, gt=0, lt=1)
    stratified: bool = True


class Budget(_Strict):
    """Training per fold, fine-tuning per candidate (0 = prune only), wall-clock limit."""

    train_steps: int = Field(default=300, ge=0, le=MAX_STEPS)
    finetune_steps: int = Field(default=0, ge=0, le=MAX_STEPS)
    batch_size: int = Field(default=64, ge=1, le=1_000_000)
    lr: float = Field(default=1e-3, gt=0)
    finetune_lr: float | None = Field(default=None, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)


class Objective(_Strict):
    """`max_compression`: the sparsest setting whose metric stays within `tolerance` of the
    dense model's; `pareto`: the front of (metric, cost)."""

    kind: Literal["max_compression", "pareto"] = "max_compression"
    metric: Literal["accuracy", "loss"] = "accuracy"
    tolerance: float = Field(default=0.01, ge=0)
    cost: Literal["nonzeros", "macs", "latency"] = "nonzeros"


class SweepConfig(_Strict):
    """A whole search: what to prune, on which data, how to validate, what to try."""

    study: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("study")
    @classmethod
    def _study(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v, "study")

    model: str = Field(min_length=1)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    data: str = "digits"
    data_kwargs: dict[str, Any] = Field(default_factory=dict)
    trainer: str | None = None
    evaluation: Evaluation = Field(default_factory=Evaluation)
    budget: Budget = Field(default_factory=Budget)
    space: Space
    objective: Objective = Field(default_factory=Objective)
    sampler: Literal["grid", "tpe", "nsga2"] = "grid"
    n_trials: int | None = Field(default=None, ge=1, le=MAX_TRIALS)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        p = self.space.prune
        if self.sampler == "grid":
            for name, sp in (
                ("space.prune.sparsity", p.sparsity),
                ("space.prune.threshold", p.threshold),
                ("space.prune.ratio", p.ratio),
                ("space.clip.threshold", self.space.clip.threshold),
            ):
                if isinstance(sp, FloatRange) and sp.step is None:
                    raise ValueError(f"{name}: the grid sampler needs a list of values or a step")
        if any(s != "one_shot" for s in p.schedule) and self.budget.finetune_steps == 0:
            raise ValueError(
                "space.prune.schedule: iterative/cubic prune during fine-tuning; "
                "set budget.finetune_steps > 0"
            )
        points = _grid_bound(self.space)
        if points > MAX_GRID_POINTS:
            raise ValueError(
                f"space: the grid would hold up to {points:,} settings (at most "
                f"{MAX_GRID_POINTS:,}); use fewer values"
            )
        if self.budget.train_steps == 0 and self.trainer is None:
            raise ValueError("budget.train_steps: 0 needs a trainer that returns a trained model")
        return self

    def config_hash(self) -> str:
        """A digest of everything that changes a trial's result (not n_trials nor study)."""
        payload = self.model_dump(mode="json", exclude={"n_trials", "study"})
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _count(space: Any) -> int:
    values = float_values(space) if not isinstance(space, str) else None
    return len(values) if values else 1


def _grid_bound(space: Space) -> int:
    """An upper bound of the grid's size: the product of every choice list's length."""
    p, c = space.prune, space.clip
    counts = [len(p.method), len(p.criterion), len(p.scope), len(p.schedule), len(p.nm)]
    counts += [len(p.importance), _count(p.sparsity), _count(p.threshold), _count(p.ratio)]
    counts += [len(c.rule), _count(c.threshold)]
    if c.threshold == "suggest":
        counts.append(len(c.suggest.percentiles) * len(c.suggest.multipliers))
    return math.prod(counts)


def check_name(name: str, what: str) -> str:
    """`name` if it can name a folder inside the output folder, else a ValueError:
    no path separators, no '.' or '..', not absolute, no control characters."""
    bad = (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).is_absolute()
        or PureWindowsPath(name).drive
        or name.startswith("~")
        or any(ord(ch) < 32 for ch in name)
    )
    if bad:
        raise ValueError(
            f"{what}: {name!r} must be a plain name (no '/', '\\', '..', absolute path or "
            "control characters): it names a folder inside the output folder"
        )
    return name


def _format_error(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see examples/sweep-digits.yaml)"
        lines.append(f"{loc or '(top level)'}: {msg}")
    return "; ".join(lines)


def parse_config(data: Any, source: str = "config") -> SweepConfig:
    """Validate an already-parsed mapping; errors name `source` and the field."""
    if not isinstance(data, dict):
        raise ValueError(
            f"{source}: the top level must be a mapping of keys, got {type(data).__name__}"
        )
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"{source}: {_format_error(e)}") from None


def load_config(path: str | os.PathLike) -> SweepConfig:
    """Read and validate a sweep YAML file (safe loader: no Python objects are built;
    nesting and alias expansion bounded)."""
    from secateurs.io.model_file import check_regular_file

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        check_regular_file(p)
    except ValueError:
        raise ValueError(f"{p} is not a regular file (a FIFO or device?); refused") from None
    try:
        data = safe_load_yaml(p.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ValueError(f"{p}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p}: not a UTF-8 text file") from None
    return parse_config(data, str(p))
