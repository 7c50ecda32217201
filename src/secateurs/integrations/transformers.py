"""Hugging Face `Trainer` callbacks: secateurs clipping instead of `max_grad_norm`, and
pruning on a schedule whose result saves with `save_pretrained`.

::

    from secateurs.clip import ZClip
    from secateurs.prune import schedules
    from secateurs.integrations.transformers import ClippingCallback, PruningCallback

    args = TrainingArguments(..., max_grad_norm=0)    # the Trainer must not clip as well
    trainer = Trainer(model, args, ..., callbacks=[
        ClippingCallback(ZClip()),
        PruningCallback(schedules.schedule("cubic", target=0.5, end=1000)),
    ])
    trainer.train()
    trainer.save_model(out)                           # plain weights, zeros in place

`ClippingCallback` runs in `on_pre_optimizer_step`: the gradients are complete (accumulation
done) and unscaled (the Trainer measures their norm, unscaling them under fp16, before this
hook). A step the rule skips (non-finite gradients) leaves parameters and optimizer state as
they are. The rule sees the model, so AGC leaves the final classifier alone.

`PruningCallback` masks the chosen weights when the Trainer is built (before any DDP wrapper)
and prunes after the optimizer steps at which the schedule asks for more sparsity. The
model's `state_dict()` gives plain weights, so checkpoints and `save_pretrained` folders load
with `from_pretrained` into the ordinary class; at the end of training the masks are made
permanent.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from secateurs.clip import ClipMonitor, ClipStats
from secateurs.integrations._torch import (
    NMPruner,
    Pruner,
    as_pruner,
    clip_step,
    prepare_masks,
)
from secateurs.prune import make_permanent
from secateurs.prune.schedules import Schedule
from secateurs.prune.summary import PruneReport

__all__ = ["ClippingCallback", "NMPruner", "PruningCallback"]


def _check_max_grad_norm(args: TrainingArguments) -> None:
    if args.max_grad_norm and args.max_grad_norm > 0:
        raise ValueError(
            f"TrainingArguments(max_grad_norm={args.max_grad_norm}) makes the Trainer clip "
            "before ClippingCallback does; pass max_grad_norm=0 (use ByNorm for norm clipping)"
        )


class ClippingCallback(TrainerCallback):
    """Apply a secateurs clipping rule (or chain) before every optimizer step.

    Needs ``TrainingArguments(max_grad_norm=0)`` (checked). At every logging step the logs get
    ``clip/norm_before`` and ``clip/coef`` of the last step and, since the start,
    ``clip/clip_rate`` and ``clip/skipped``; `monitor.summary()` has the full summary. Loggers
    (TensorBoard, W&B) that the Trainer calls before this callback do not see those keys: list
    it first with ``trainer.callback_handler.callbacks.insert(0, callback)`` if they must.
    """

    def __init__(self, rule: Any, *, prefix: str = "clip/") -> None:
        if not callable(rule):
            raise TypeError(f"rule must be a clipping rule, got {type(rule).__name__}")
        self.rule = rule
        self.prefix = prefix
        self.monitor = ClipMonitor()
        self.last: ClipStats | None = None

    def on_init_end(self, args, state, control, **kwargs) -> None:
        _check_max_grad_norm(args)

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        _check_max_grad_norm(args)

    def on_pre_optimizer_step(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: nn.Module | None = None,
        optimizer: Any = None,
        **kwargs: Any,
    ) -> None:
        assert model is not None and optimizer is not None
        self.last = clip_step(self.rule, model, optimizer, self.monitor)

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs) -> None:
        if logs is None or self.last is None:
            return
        summary = self.monitor.summary()
        extra = {
            f"{self.prefix}norm_before": self.last.norm_before,
            f"{self.prefix}coef": self.last.coef,
            f"{self.prefix}clip_rate": summary["clip_rate"],
            f"{self.prefix}skipped": summary["skipped"],
        }
        extra = {k: v for k, v in extra.items() if v is not None}
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)  # the Trainer stored a copy of the logs


class PruningCallback(TrainerCallback):
    """Prune during `Trainer.train` on a schedule; bake the masks in at the end.

    - `schedule`: a function of the optimizer step returning the target sparsity
      (`secateurs.prune.schedules.schedule("iterative" | "cubic" | "one_shot", ...)`); the
      keyword arguments (`criterion`, `scope`, `include`, `exclude`, ...) go to
      `secateurs.prune.unstructured_`. Or a ready pruner such as `NMPruner(2, 4, at=100)`.
    - `permanent`: make the masks permanent when training ends.
    By default the last Linear (a classification head) and embeddings stay dense, as in
    `secateurs.prune.find_targets`.
    """

    def __init__(self, schedule: Schedule | Pruner, *, permanent: bool = True, **kwargs: Any):
        self.pruner = as_pruner(schedule, kwargs)
        self.permanent = permanent

    @property
    def reports(self) -> list[tuple[int, PruneReport]]:
        """(step, report) of every pruning event so far."""
        return getattr(self.pruner, "reports", [])

    def on_init_end(self, args, state, control, model: nn.Module | None = None, **kwargs):
        if model is not None:
            prepare_masks(model, self.pruner)  # before accelerate wraps it

    def on_train_begin(self, args, state, control, model: nn.Module | None = None, **kwargs):
        if model is not None:
            prepare_masks(model, self.pruner)  # a callback added after the Trainer was built
        self.pruner.steps = state.global_step  # resumed runs continue the schedule

    def on_step_end(self, args, state, control, model: nn.Module | None = None, **kwargs):
        assert model is not None
        self.pruner.step(model)

    def on_train_end(self, args, state, control, model: nn.Module | None = None, **kwargs):
        if hasattr(self.pruner, "close"):
            self.pruner.close()
        if self.permanent and model is not None:
            make_permanent(model)
