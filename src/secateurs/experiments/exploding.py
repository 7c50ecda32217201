"""The exploding-gradient experiment of Pascanu, Mikolov and Bengio (2013), small and fast.

A tanh RNN learns the adding problem (`secateurs.zoo.sequence`) with plain SGD (no momentum;
the learning rate decays linearly to 0) at a learning rate high enough for gradients to
explode now and then. The sequences have 100 steps and the two marked values lie in the last
`span` = 20 of them: the model reads and back-propagates through all 100 steps (which is what
makes gradients explode), while the value it must carry spans up to 20 steps, short enough to
be learnt in about a minute of CPU. `config(span=100, steps=...)` is the classic, much slower
placement (markers in the first and second halves). Each clipping rule is
trained from the same seeds (same initial weights, same batches) and judged on a fixed test
set: a run *succeeded* when its test mean squared error ends below `success_mse` (0.05, against
0.167 for always predicting the mean); a run *diverged* when its loss or weights became
non-finite. The table reports, per rule, the seeds that succeeded, the median final test MSE,
the share of optimizer steps the rule clipped, and the steps with non-finite gradients.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from typing import Any

import torch
from torch import nn

from secateurs.clip import ClipStats
from secateurs.clip import make_rule as make_clip_rule
from secateurs.pipeline import Measure, Pipeline, Run, Train
from secateurs.train import StepRecord, fit
from secateurs.zoo.sequence import BASELINE_MSE, TanhRNN, adding_problem

RULES = ("none", "value", "norm", "agc", "autoclip", "zclip")  # secateurs.clip.RULES


@dataclass(frozen=True)
class Config:
    """Everything that defines the experiment (the defaults are the documented run)."""

    seeds: int = 5
    steps: int = 1200
    length: int = 100
    span: int | None = 20
    hidden: int = 32
    batch: int = 32
    lr: float = 1.0
    recurrent_scale: float = 1.0
    test_size: int = 1000
    success_mse: float = 0.05
    max_norm: float = 0.3
    clip_value: float = 0.01
    agc_clip: float = 0.05
    autoclip_percentile: float = 10.0
    rules: tuple[str, ...] = RULES

    def validate(self) -> Config:
        for name in ("seeds", "steps", "hidden", "batch", "test_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.length < 2:
            raise ValueError(f"length must be >= 2, got {self.length}")
        if self.span is not None and not 2 <= self.span <= self.length:
            raise ValueError(f"span must be between 2 and length={self.length}, got {self.span}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        unknown = [r for r in self.rules if r not in RULES]
        if unknown or not self.rules:
            raise ValueError(f"rules must be taken from {', '.join(RULES)}, got {self.rules}")
        return self


def make_rule(name: str, cfg: Config) -> Callable[[nn.Module], ClipStats] | None:
    """The clipping rule a run uses (None: no clipping). All skip non-finite steps."""
    thresholds = {
        "value": cfg.clip_value,
        "norm": cfg.max_norm,
        "agc": cfg.agc_clip,
        "autoclip": cfg.autoclip_percentile,
    }
    settings: dict[str, Any] = {"nonfinite": "skip"}
    if name == "agc":
        # The readout is a regression head, not a classifier: clip it too (unclipped, it
        # explodes at this learning rate).
        settings["skip_classifier"] = False
    return make_clip_rule(name, thresholds.get(name), **settings) if name != "none" else None


@dataclass
class RunResult:
    """One (rule, seed) training run."""

    rule: str
    seed: int
    test_mse: float
    final_loss: float
    steps: int
    clipped_steps: int
    nonfinite_steps: int
    diverged: bool
    succeeded: bool


@dataclass
class RuleSummary:
    rule: str
    seeds: int
    succeeded: int
    diverged: int
    median_test_mse: float
    clipped_share: float
    nonfinite_steps: int


@dataclass
class Result:
    config: Config
    runs: list[RunResult] = field(default_factory=list)

    def summaries(self) -> list[RuleSummary]:
        out = []
        for rule in self.config.rules:
            runs = [r for r in self.runs if r.rule == rule]
            if not runs:
                continue
            steps = sum(r.steps for r in runs)
            out.append(
                RuleSummary(
                    rule=rule,
                    seeds=len(runs),
                    succeeded=sum(r.succeeded for r in runs),
                    diverged=sum(r.diverged for r in runs),
                    median_test_mse=statistics.median(r.test_mse for r in runs),
                    clipped_share=sum(r.clipped_steps for r in runs) / steps if steps else 0.0,
                    nonfinite_steps=sum(r.nonfinite_steps for r in runs),
                )
            )
        return out

    def table(self) -> str:
        """A Markdown table: one row per rule."""
        lines = [
            "| rule | seeds succeeded | diverged | median test MSE | steps clipped | "
            "non-finite steps |",
            "|---|---|---|---|---|---|",
        ]
        for s in self.summaries():
            mse = "nan" if math.isnan(s.median_test_mse) else f"{s.median_test_mse:.4f}"
            lines.append(
                f"| {s.rule} | {s.succeeded}/{s.seeds} | {s.diverged} | {mse} | "
                f"{100 * s.clipped_share:.1f}% | {s.nonfinite_steps} |"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg["rules"] = list(cfg["rules"])
        return {
            "experiment": "exploding_gradients",
            "baseline_mse": BASELINE_MSE,
            "config": cfg,
            "summary": [asdict(s) for s in self.summaries()],
            "runs": [asdict(r) for r in self.runs],
        }


class _LinearDecay:
    """Callback: the learning rate falls linearly from `lr` to 0 over `steps` steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, steps: int) -> None:
        self.optimizer, self.lr, self.steps = optimizer, lr, steps

    def on_step_end(self, record: StepRecord, model: nn.Module) -> bool:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * max(0.0, 1.0 - (record.step + 1) / self.steps)
        return False


class _Tracker:
    """Callback: counts clipped and non-finite steps; stops a run whose weights became
    non-finite (they would stay NaN)."""

    def __init__(self) -> None:
        self.clipped = 0
        self.nonfinite = 0
        self.last_loss = math.nan
        self.diverged = False

    def on_step_end(self, record: StepRecord, model: nn.Module) -> bool:
        stats = record.clip
        loss = record.loss
        bad = not math.isfinite(loss) or bool(stats is not None and stats.nonfinite)
        self.nonfinite += bad
        self.clipped += bool(stats is not None and stats.clipped and not record.skipped)
        if math.isfinite(loss):
            self.last_loss = loss
        # Non-finite weights show in the next loss: only then look at the weights.
        if not math.isfinite(loss) and not all(
            bool(torch.isfinite(p).all()) for p in model.parameters()
        ):
            self.diverged = True
            return True
        return False


def _batches(cfg: Config, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for step in range(cfg.steps):
        yield adding_problem(cfg.batch, cfg.length, span=cfg.span, seed=seed * 1_000_003 + step)


def run_one(rule: str, seed: int, cfg: Config) -> RunResult:
    """Train one model from `seed` with `rule` and evaluate it on the fixed test set."""
    torch.set_num_threads(1)
    model = TanhRNN(
        cfg.hidden,
        recurrent_scale=cfg.recurrent_scale,
        generator=torch.Generator().manual_seed(seed),
    )
    tracker = _Tracker()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)

    def train(net: nn.Module, clip: Any) -> Any:
        return fit(
            net,
            _batches(cfg, seed),
            optimizer=optimizer,
            loss_fn=nn.functional.mse_loss,
            clip=clip,
            max_steps=cfg.steps,
            callbacks=[tracker, _LinearDecay(optimizer, cfg.lr, cfg.steps)],
        )

    x_test, y_test = adding_problem(cfg.test_size, cfg.length, span=cfg.span, seed=999_983)

    def test_mse(net: nn.Module) -> float:
        with torch.no_grad():
            return float(nn.functional.mse_loss(net(x_test), y_test))

    run = Pipeline(Train(train), Measure("test_mse", test_mse))(
        Run(model, rule=make_rule(rule, cfg))
    )
    result, mse = run.fits["train"], run.metrics["test_mse"]
    diverged = tracker.diverged or not math.isfinite(mse)
    return RunResult(
        rule=rule,
        seed=seed,
        test_mse=mse if math.isfinite(mse) else math.nan,
        final_loss=tracker.last_loss,
        steps=len(result.steps),
        clipped_steps=tracker.clipped,
        nonfinite_steps=tracker.nonfinite,
        diverged=diverged,
        succeeded=not diverged and mse < cfg.success_mse,
    )


def _run_star(args: tuple[str, int, Config]) -> RunResult:
    return run_one(*args)


def run(
    cfg: Config | None = None,
    *,
    workers: int | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> Result:
    """Run every (rule, seed) pair; `workers` processes (default: up to 2, by CPU count)."""
    cfg = (cfg or Config()).validate()
    jobs = [(rule, seed, cfg) for rule in cfg.rules for seed in range(cfg.seeds)]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    result = Result(cfg)
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            r = _run_star(job)
            result.runs.append(r)
            if on_result:
                on_result(r)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for r in pool.map(_run_star, jobs):
                result.runs.append(r)
                if on_result:
                    on_result(r)
    return result


def config(**overrides: Any) -> Config:
    """The default configuration with some fields replaced (None values are ignored)."""
    return replace(Config(), **{k: v for k, v in overrides.items() if v is not None})
