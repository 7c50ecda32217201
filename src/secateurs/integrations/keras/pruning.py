"""Magnitude pruning for Keras 3 during `model.fit`, on TF Model Optimization's schedules
(`ConstantSparsity`, `PolynomialDecay`), without wrapping any layer (see
`secateurs.integrations.keras`)."""

from __future__ import annotations

import fnmatch
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import keras  # type: ignore[import-untyped]
from keras import ops

from secateurs.integrations.keras.clipping import _layers


class PruningSchedule(ABC):
    """TF Model Optimization's schedule contract: `(step) -> (prune_now, sparsity)`.

    Pruning happens at steps ``begin_step, begin_step + frequency, ...`` up to `end_step`
    (-1: no end); `step` counts optimizer steps from 0.
    """

    def __init__(self, begin_step: int, end_step: int, frequency: int) -> None:
        if begin_step < 0 or frequency < 1 or (end_step != -1 and end_step < begin_step):
            raise ValueError(
                f"need begin_step >= 0, frequency >= 1 and end_step >= begin_step (or -1); got "
                f"begin_step={begin_step}, end_step={end_step}, frequency={frequency}"
            )
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency

    def prune_now(self, step: int) -> bool:
        in_range = step >= self.begin_step and (self.end_step == -1 or step <= self.end_step)
        return in_range and (step - self.begin_step) % self.frequency == 0

    @abstractmethod
    def sparsity(self, step: int) -> float:
        """The target sparsity at optimizer step `step`."""

    def __call__(self, step: int) -> tuple[bool, float]:
        return self.prune_now(step), self.sparsity(step)


def _check_fraction(value: float, what: str) -> float:
    if not 0 <= value < 1:
        raise ValueError(f"{what} must be in [0, 1), got {value}")
    return float(value)


class ConstantSparsity(PruningSchedule):
    """`target_sparsity` at every pruning step (TF-MOT's ConstantSparsity)."""

    def __init__(
        self, target_sparsity: float, begin_step: int, end_step: int = -1, frequency: int = 100
    ) -> None:
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = _check_fraction(target_sparsity, "target_sparsity")

    def sparsity(self, step: int) -> float:
        return self.target_sparsity


class PolynomialDecay(PruningSchedule):
    """TF-MOT's PolynomialDecay: from `initial_sparsity` at `begin_step` to `final_sparsity`
    at `end_step`, ``final + (initial - final) * (1 - p) ** power`` with p the fraction of the
    way (power 3 is Zhu & Gupta's cubic schedule, `secateurs.prune.schedules.cubic`)."""

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        power: float = 3,
        frequency: int = 100,
    ) -> None:
        if end_step == -1 or end_step <= begin_step:
            raise ValueError(f"PolynomialDecay needs end_step > begin_step, got {end_step}")
        super().__init__(begin_step, end_step, frequency)
        self.initial_sparsity = _check_fraction(initial_sparsity, "initial_sparsity")
        self.final_sparsity = _check_fraction(final_sparsity, "final_sparsity")
        self.power = float(power)

    def sparsity(self, step: int) -> float:
        p = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return (
            self.final_sparsity
            + (self.initial_sparsity - self.final_sparsity) * (1 - p) ** self.power
        )


_PRUNABLE = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Embedding,
)


class PruningCallback(keras.callbacks.Callback):
    """Magnitude pruning of kernels during `model.fit`, on a TF-MOT style schedule.

    - `schedule`: `ConstantSparsity` or `PolynomialDecay` (steps count optimizer steps, from
      the optimizer's `iterations`, so a second `fit` call continues the schedule).
    - `scope`: "global" ranks all chosen kernels together; "layer" prunes each kernel to the
      scheduled sparsity (TF-MOT's behaviour).
    - `include` / `exclude`: fnmatch patterns of layer names. By default every Dense,
      EinsumDense and Conv kernel except the final Dense layer (the classifier) is pruned,
      and embeddings stay dense, as in `secateurs.prune.find_targets`; `exclude=[]` prunes
      them all.
    Pruned weights stay zero: the callback re-applies its masks after every optimizer step.
    `strip_pruning()` applies them a last time and stops (TF-MOT's strip step: afterwards the
    weights may move again if training continues).
    """

    def __init__(
        self,
        schedule: PruningSchedule,
        *,
        scope: str = "global",
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(schedule, PruningSchedule):
            raise TypeError("schedule must be ConstantSparsity(...) or PolynomialDecay(...)")
        if scope not in ("global", "layer"):
            raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
        self.schedule = schedule
        self.scope = scope
        self.include = None if include is None else list(include)
        self.exclude = None if exclude is None else list(exclude)
        self.kernels: list[Any] = []
        self.masks: list[Any] = []
        self.current = 0.0
        self.events: list[tuple[int, float]] = []
        self._stripped = False

    def _targets(self, model: keras.Model) -> list[Any]:
        layers = [layer for layer in _layers(model) if isinstance(layer, _PRUNABLE)]
        if self.include is not None:
            layers = [
                la for la in layers if any(fnmatch.fnmatchcase(la.name, p) for p in self.include)
            ]
        if self.exclude is None:
            dense = [la for la in layers if isinstance(la, keras.layers.Dense)]
            skip = {id(dense[-1])} if dense else set()
            layers = [
                la
                for la in layers
                if id(la) not in skip and not isinstance(la, keras.layers.Embedding)
            ]
        else:
            layers = [
                la
                for la in layers
                if not any(fnmatch.fnmatchcase(la.name, p) for p in self.exclude)
            ]
        kernels = [
            la.embeddings if isinstance(la, keras.layers.Embedding) else la.kernel for la in layers
        ]
        if not kernels:
            raise ValueError("no prunable kernel was chosen (check include=/exclude=)")
        return kernels

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self._stripped:
            return
        if not self.kernels:
            self.kernels = self._targets(self.model)
            self.masks = [ops.ones(k.shape, dtype="bool") for k in self.kernels]

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._stripped:
            return
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        prune_now, target = self.schedule(step)
        if prune_now and target > self.current:
            self._prune(target)
            self.current = target
            self.events.append((step, target))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self._stripped:
            self._apply()

    def _prune(self, sparsity: float) -> None:
        # already pruned weights score -1, below every |w|: pruned stays pruned
        scores = [
            ops.where(m, ops.abs(ops.convert_to_tensor(k)), -1.0)
            for k, m in zip(self.kernels, self.masks, strict=True)
        ]
        groups = (
            [list(range(len(scores)))]
            if self.scope == "global"
            else [[i] for i in range(len(scores))]
        )
        for group in groups:
            flat = ops.concatenate([ops.reshape(scores[i], (-1,)) for i in group])
            n = int(flat.shape[0])
            k = round(sparsity * n)
            keep = ops.ones((n,), dtype="bool")
            if k > 0:
                drop = ops.argsort(flat)[:k]
                keep = ops.scatter_update(
                    keep, ops.expand_dims(drop, 1), ops.zeros((k,), dtype="bool")
                )
            offset = 0
            for i in group:
                size = math.prod(self.kernels[i].shape)
                self.masks[i] = ops.reshape(keep[offset : offset + size], self.kernels[i].shape)
                offset += size
        self._apply()

    def _apply(self) -> None:
        for kernel, mask in zip(self.kernels, self.masks, strict=True):
            kernel.assign(ops.where(mask, kernel, ops.zeros((), dtype=kernel.dtype)))

    def sparsity(self) -> float:
        """The fraction of zeros in the pruned kernels now."""
        zeros = sum(
            int(ops.convert_to_numpy(ops.sum(ops.cast(ops.equal(k, 0), "int32"))))
            for k in self.kernels
        )
        total = sum(math.prod(k.shape) for k in self.kernels)
        return zeros / total if total else 0.0

    def strip_pruning(self) -> keras.Model:
        """Apply the masks a last time, forget them and return the (plain) model."""
        if self.kernels and not self._stripped:
            self._apply()
        self._stripped = True
        self.masks = []
        return self.model
