"""Lightning callbacks: any secateurs clipping rule, and pruning on a schedule.

::

    from secateurs.clip import AGC
    from secateurs.prune import schedules
    from secateurs.integrations.lightning import Clipping, Pruning

    trainer = L.Trainer(callbacks=[
        Clipping(AGC(0.01)),                                   # leave gradient_clip_val unset
        Pruning(schedules.schedule("cubic", target=0.8, end=500)),
    ])

`Clipping` runs in `on_before_optimizer_step`: after backward and, under AMP, after Lightning
has unscaled the gradients; steps whose gradients the scaler found non-finite are left alone.
Under ``strategy="ddp"`` the gradients are already averaged there, so every process takes the
same decision. A step the rule skips (non-finite gradients, ``nonfinite="skip"``) changes
neither the parameters nor the optimizer state. Statistics go through `pl_module.log` under
``clip/`` (``clip/norm_before``, ``clip/coef``, ...), so every Lightning logger sees them.

`Pruning` prunes in place with masks (`secateurs.prune`), after the optimizer steps at which
the schedule asks for more sparsity. Checkpoints hold the effective weights (zeros baked in,
no mask entries), so they load into the plain model class; at the end of fitting the masks are
made permanent. `StructuredPruning` physically removes units (`secateurs.prune.structured`).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from torch import nn

from secateurs._inputs import move_inputs
from secateurs.clip import ClipMonitor, ClipStats
from secateurs.integrations._torch import (
    NMPruner,
    Pruner,
    as_pruner,
    clip_step,
    load_pruner_state,
    prepare_masks,
    pruner_state,
    scalar_logs,
)
from secateurs.prune import make_permanent, structured
from secateurs.prune.schedules import Schedule
from secateurs.prune.summary import PruneReport
from secateurs.train.loop import _scaler_found_inf

__all__ = ["Clipping", "NMPruner", "Pruning", "StructuredPruning"]


class Clipping(Callback):
    """Apply a secateurs clipping rule (or chain) before every optimizer step.

    - `rule`: `ByNorm`, `ByValue`, `AGC`, `AutoClip`, `ZClip`, `chain(...)`, or any callable
      taking the model and returning `ClipStats`. It sees the LightningModule, so AGC leaves
      the final classifier alone.
    - `log`: log the statistics with `pl_module.log` (kept as tensors: no synchronisation).
    - `monitor`: a running summary (`callback.monitor.summary()`): clip rate, skips, norms.
    The rule's state (AutoClip's history, ZClip's averages) is saved in checkpoints.
    """

    def __init__(self, rule: Any, *, log: bool = True, prefix: str = "clip/") -> None:
        if not callable(rule):
            raise TypeError(f"rule must be a clipping rule, got {type(rule).__name__}")
        self.rule = rule
        self.log = log
        self.prefix = prefix
        self.monitor = ClipMonitor()
        self.last: ClipStats | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.gradient_clip_val:
            raise ValueError(
                f"Trainer(gradient_clip_val={trainer.gradient_clip_val}) clips a second time "
                "after this callback; leave gradient_clip_val unset (use ByNorm for norm clipping)"
            )

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and _scaler_found_inf(scaler, optimizer):
            return  # the scaler skips this step itself; keep the rule's history clean
        stats = clip_step(self.rule, pl_module, optimizer, self.monitor)
        self.last = stats
        if self.log:
            for key, value in scalar_logs(stats, self.prefix).items():
                pl_module.log(key, value, on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return self.monitor.state_dict() | {
            "rule": self.rule.state_dict() if hasattr(self.rule, "state_dict") else {}
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        rule_state = state.pop("rule", {})
        self.monitor.load_state_dict(state)
        if hasattr(self.rule, "load_state_dict"):
            self.rule.load_state_dict(rule_state)


class Pruning(Callback):
    """Prune during `fit` on a schedule; bake the masks in at the end.

    - `schedule`: a function of the optimizer step returning the target sparsity
      (`secateurs.prune.schedules.schedule("iterative" | "cubic" | "one_shot", ...)`); the
      keyword arguments (`criterion`, `scope`, `include`, `exclude`, ...) go to
      `secateurs.prune.unstructured_`. Or a ready pruner such as `NMPruner(2, 4, at=100)`.
    - `permanent`: make the masks permanent when fitting ends (plain weights with zeros).
    The schedule counts optimizer steps (`trainer.global_step`), so gradient accumulation is
    respected. Every DDP process prunes the same way (the weights are equal everywhere).
    """

    def __init__(
        self,
        schedule: Schedule | Pruner,
        *,
        permanent: bool = True,
        log: bool = True,
        **kwargs: Any,
    ) -> None:
        self.pruner = as_pruner(schedule, kwargs)
        self.permanent = permanent
        self.log = log
        self._seen_step = -1

    @property
    def reports(self) -> list[tuple[int, PruneReport]]:
        """(step, report) of every pruning event so far."""
        return getattr(self.pruner, "reports", [])

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            prepare_masks(pl_module, self.pruner)  # before DDP wraps the model

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen_step = trainer.global_step

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.global_step == self._seen_step:
            return  # accumulating gradients: no optimizer step yet
        self._seen_step = trainer.global_step
        report = self.pruner.step(pl_module)
        if self.log:
            pl_module.log("prune/target", float(self.pruner.current), on_step=True)
            if report is not None:
                pl_module.log("prune/sparsity", float(report.sparsity), on_step=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if hasattr(self.pruner, "close"):
            self.pruner.close()
        if self.permanent:
            make_permanent(pl_module)

    def state_dict(self) -> dict[str, Any]:
        return pruner_state(self.pruner)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        load_pruner_state(self.pruner, state_dict)


class StructuredPruning(Callback):
    """Remove whole units of `pl_module.<attribute>` with `secateurs.prune.structured`.

    With `at=0` the surgery happens in `setup`, before the optimizers and the DDP wrapper are
    built: the usual way (prune, then fine-tune with `fit`). With `at > 0` it happens before
    optimizer step `at + 1` and the optimizers are built again from `configure_optimizers`
    (their state starts over); this needs a single process, since DDP's buckets are fixed.
    The checkpoint then holds the smaller shapes: save the module with `secateurs.io.save`
    to reload it without its class.
    """

    def __init__(
        self,
        example_inputs: Any,
        *,
        ratio: float,
        attribute: str = "model",
        at: int = 0,
        **kwargs: Any,
    ) -> None:
        if isinstance(at, bool) or not isinstance(at, int) or at < 0:
            raise ValueError(f"at must be an int >= 0 (an optimizer step), got {at!r}")
        self.example_inputs = example_inputs
        self.ratio = ratio
        self.attribute = attribute
        self.at = at
        self.kwargs = kwargs
        self.report: Any = None

    def _prune(self, pl_module: pl.LightningModule) -> None:
        module = getattr(pl_module, self.attribute, None)
        if not isinstance(module, nn.Module):
            raise AttributeError(
                f"{type(pl_module).__name__} has no module {self.attribute!r} to prune; pass "
                "StructuredPruning(attribute=...) naming the submodule that holds the network"
            )
        device = next(module.parameters()).device
        inputs = move_inputs(self.example_inputs, device)
        smaller, self.report = structured(module, inputs, ratio=self.ratio, **self.kwargs)
        setattr(pl_module, self.attribute, smaller)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.at == 0 and self.report is None:
            self._prune(pl_module)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.at == 0 or self.report is not None or trainer.global_step < self.at:
            return
        if trainer.world_size > 1:
            raise RuntimeError(
                "structured pruning during training changes parameter shapes, which DDP cannot "
                "follow; use StructuredPruning(at=0) to prune before training starts"
            )
        self._prune(pl_module)
        trainer.strategy.setup_optimizers(trainer)
