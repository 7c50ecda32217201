"""Adaptive gradient clipping for Keras 3, computed with `keras.ops`: `ClippedOptimizer`
wraps any Keras optimizer and applies `AGC`, `AutoClip`, `ZClip` or `chain(...)` of them
before it (see `secateurs.integrations.keras`)."""

from __future__ import annotations

import fnmatch
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import keras  # type: ignore[import-untyped]
from keras import ops

_register = keras.saving.register_keras_serializable(package="secateurs")


def _sum_squares(values: Sequence[Any]) -> Any:
    return ops.sum(ops.stack([ops.sum(ops.square(ops.cast(v, "float32"))) for v in values]))


class Rule(ABC):
    """A clipping rule on Keras gradients: `clip(grads, variables) -> (grads, stats)`.

    `build(optimizer)` creates the rule's state as optimizer variables (saved with the
    model). `stats` maps ``norm_before``, ``norm_after``, ``coef`` and ``clipped`` to scalar
    tensors, as `secateurs.clip.ClipStats` does for PyTorch.
    """

    name = "rule"

    def build(self, optimizer: keras.optimizers.Optimizer) -> None:
        """Create state variables with `optimizer.add_variable` (none by default)."""
        return None

    @abstractmethod
    def clip(self, grads: list[Any], variables: list[Any]) -> tuple[list[Any], dict[str, Any]]:
        """The clipped gradients (None stays None) and the step's statistics."""

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Rule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@_register
class AGC(Rule):
    """Adaptive gradient clipping: each unit's gradient norm is at most
    ``clip * max(||W_unit||, eps)``.

    A unit is one output of a kernel: Keras kernels keep outputs on the last axis (Dense
    ``(in, out)``, Conv ``(kh, kw, in, out)``), so the norms run over all other axes; a 1-D
    variable (bias, norm scale) is one unit, as in `secateurs.clip.AGC`. `exclude` holds
    fnmatch patterns of variable paths left alone; the paper leaves the final classifier
    unclipped: ``AGC(0.01, exclude=final_classifier(model))``.
    """

    name = "agc"

    def __init__(self, clip: float = 0.01, eps: float = 1e-3, exclude: Iterable[str] = ()) -> None:
        if not clip > 0 or not eps > 0:
            raise ValueError(f"clip and eps must be > 0, got clip={clip}, eps={eps}")
        self.clip_factor = float(clip)
        self.eps = float(eps)
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude)

    def _selected(self, variable: Any) -> bool:
        path = getattr(variable, "path", getattr(variable, "name", ""))
        return not any(fnmatch.fnmatchcase(path, p) for p in self.exclude)

    def clip(self, grads: list[Any], variables: list[Any]) -> tuple[list[Any], dict[str, Any]]:
        out = list(grads)
        before: list[Any] = []
        after: list[Any] = []
        coefs: list[Any] = []
        for i, (g, v) in enumerate(zip(grads, variables, strict=True)):
            if g is None or not self._selected(v):
                continue
            axes = tuple(range(len(g.shape) - 1)) if len(g.shape) > 1 else None
            g_norm = ops.sqrt(ops.sum(ops.square(g), axis=axes, keepdims=True))
            w = ops.stop_gradient(ops.convert_to_tensor(v))
            w_norm = ops.sqrt(ops.sum(ops.square(w), axes, keepdims=True))
            limit = self.clip_factor * ops.maximum(w_norm, self.eps)
            coef = ops.minimum(limit / ops.maximum(g_norm, 1e-6), 1.0)
            out[i] = g * ops.cast(coef, g.dtype)
            before.append(ops.sum(ops.square(g_norm)))
            after.append(ops.sum(ops.square(g_norm * coef)))
            coefs.append(ops.min(coef))
        if not coefs:
            zero = ops.zeros(())
            return out, {
                "norm_before": zero,
                "norm_after": zero,
                "coef": ops.ones(()),
                "clipped": zero,
            }
        coef_min = ops.min(ops.stack(coefs))
        stats = {
            "norm_before": ops.sqrt(ops.sum(ops.stack(before))),
            "norm_after": ops.sqrt(ops.sum(ops.stack(after))),
            "coef": coef_min,
            "clipped": ops.cast(coef_min < 1.0, "float32"),
        }
        return out, stats

    def get_config(self) -> dict[str, Any]:
        return {"clip": self.clip_factor, "eps": self.eps, "exclude": list(self.exclude)}


class GlobalNormRule(Rule):
    """Scale all gradients by ``min(1, threshold / (norm + 1e-6))`` from their global L2 norm."""

    @abstractmethod
    def threshold(self, total: Any) -> Any:
        """The threshold for this step, given the global norm `total` (may update state)."""

    def clip(self, grads: list[Any], variables: list[Any]) -> tuple[list[Any], dict[str, Any]]:
        present = [g for g in grads if g is not None]
        total = ops.sqrt(_sum_squares(present))
        limit = self.threshold(total)
        coef = ops.minimum(limit / (total + 1e-6), 1.0)
        out = [None if g is None else g * ops.cast(coef, g.dtype) for g in grads]
        stats = {
            "norm_before": total,
            "norm_after": total * coef,
            "coef": coef,
            "clipped": ops.cast(total > limit, "float32"),
        }
        return out, stats


@_register
class AutoClip(GlobalNormRule):
    """Clip the global norm to the `percentile`-th percentile (linear interpolation, as numpy)
    of the last `history` norms, the current one included. Only finite norms are stored."""

    name = "autoclip"

    def __init__(self, percentile: float = 10.0, history: int = 10_000) -> None:
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        if int(history) < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.percentile = float(percentile)
        self.history = int(history)

    def build(self, optimizer: keras.optimizers.Optimizer) -> None:
        self.norms = optimizer.add_variable(
            (self.history,), initializer="zeros", dtype="float32", name="autoclip_norms"
        )
        self.count = optimizer.add_variable(
            (), initializer="zeros", dtype="int32", name="autoclip_count"
        )

    def threshold(self, total: Any) -> Any:
        slot = ops.mod(self.count, self.history)
        finite = ops.isfinite(total)
        value = ops.where(finite, total, 0.0)
        self.norms.assign(
            ops.scatter_update(self.norms, ops.reshape(slot, (1, 1)), ops.reshape(value, (1,)))
        )
        self.count.assign(self.count + ops.cast(finite, "int32"))
        filled = ops.minimum(self.count, self.history)
        # the filled slots sorted, the empty ones pushed to the end
        index = ops.arange(self.history)
        values = ops.where(index < filled, self.norms, math.inf)
        ordered = ops.sort(values)
        pos = (self.percentile / 100.0) * ops.cast(ops.maximum(filled - 1, 0), "float32")
        lo = ops.cast(ops.floor(pos), "int32")
        hi = ops.cast(ops.ceil(pos), "int32")
        low, high = ops.take(ordered, lo), ops.take(ordered, hi)
        return low + (high - low) * (pos - ops.cast(lo, "float32"))

    def get_config(self) -> dict[str, Any]:
        return {"percentile": self.percentile, "history": self.history}


@_register
class ZClip(GlobalNormRule):
    """Z-score spike clipping on exponential moving averages of the global norm (see
    `secateurs.clip.ZClip`, the same arithmetic): `warmup` steps collect norms, then a norm
    whose z-score exceeds `z` is clipped to ``mean + z**2 / z_t * std`` ("adaptive") or to the
    mean ("mean"), and the averages see the clipped norm."""

    name = "zclip"

    def __init__(
        self,
        z: float = 2.5,
        alpha: float = 0.97,
        warmup: int = 25,
        mode: str = "adaptive",
        eps: float = 1e-6,
    ) -> None:
        if mode not in ("adaptive", "mean"):
            raise ValueError(f"mode must be 'adaptive' or 'mean', got {mode!r}")
        if not z > 0 or not 0 < alpha < 1 or int(warmup) < 1:
            raise ValueError(f"need z > 0, 0 < alpha < 1, warmup >= 1; got {z}, {alpha}, {warmup}")
        self.z, self.alpha, self.warmup, self.mode, self.eps = (
            float(z),
            float(alpha),
            int(warmup),
            mode,
            float(eps),
        )

    def build(self, optimizer: keras.optimizers.Optimizer) -> None:
        def var(name: str, shape: tuple = (), dtype: str = "float32") -> Any:
            return optimizer.add_variable(shape, initializer="zeros", dtype=dtype, name=name)

        self.warm = var("zclip_warmup_norms", (self.warmup,))
        self.seen = var("zclip_seen", dtype="int32")
        self.mean = var("zclip_mean")
        self.var = var("zclip_var")

    def threshold(self, total: Any) -> Any:
        g = ops.cast(total, "float32")
        initialized = self.seen >= self.warmup
        # warm-up: collect (finite norms only), start the averages after `warmup` of them
        slot = ops.reshape(ops.minimum(self.seen, self.warmup - 1), (1, 1))
        collect = ops.logical_and(ops.logical_not(initialized), ops.isfinite(g))
        warm = ops.where(
            collect, ops.scatter_update(self.warm, slot, ops.reshape(g, (1,))), self.warm
        )
        seen = self.seen + ops.cast(collect, "int32")
        start = ops.logical_and(collect, seen >= self.warmup)
        w_mean = ops.mean(warm)
        w_var = ops.mean(ops.square(warm - w_mean))
        # after warm-up: the EMA rule
        std = ops.sqrt(self.var)
        zscore = (g - self.mean) / (std + self.eps)
        spike = ops.logical_and(initialized, zscore > self.z)
        clipped_norm = (
            self.mean + (self.z**2 / zscore) * std if self.mode == "adaptive" else self.mean
        )
        limit = ops.where(spike, clipped_norm, math.inf)
        effective = ops.where(spike, clipped_norm, g)
        new_mean = self.alpha * self.mean + (1 - self.alpha) * effective
        new_var = self.alpha * self.var + (1 - self.alpha) * ops.square(effective - new_mean)
        update = ops.logical_and(initialized, ops.isfinite(g))
        self.mean.assign(ops.where(start, w_mean, ops.where(update, new_mean, self.mean)))
        self.var.assign(ops.where(start, w_var, ops.where(update, new_var, self.var)))
        self.warm.assign(warm)
        self.seen.assign(seen)
        return limit

    def get_config(self) -> dict[str, Any]:
        return {
            "z": self.z,
            "alpha": self.alpha,
            "warmup": self.warmup,
            "mode": self.mode,
            "eps": self.eps,
        }


@_register
class Chain(Rule):
    """Apply rules in order; stats: the first rule's `norm_before`, the last one's
    `norm_after`, the product of the factors, `clipped` if any rule clipped."""

    name = "chain"

    def __init__(self, rules: Sequence[Rule]) -> None:
        if not rules:
            raise ValueError("chain needs at least one rule, e.g. chain(AGC(), ZClip())")
        self.rules = list(rules)

    def build(self, optimizer: keras.optimizers.Optimizer) -> None:
        for rule in self.rules:
            rule.build(optimizer)

    def clip(self, grads: list[Any], variables: list[Any]) -> tuple[list[Any], dict[str, Any]]:
        parts = []
        for rule in self.rules:
            grads, stats = rule.clip(grads, variables)
            parts.append(stats)
        coef = parts[0]["coef"]
        for p in parts[1:]:
            coef = coef * p["coef"]
        clipped = ops.max(ops.stack([p["clipped"] for p in parts]))
        return grads, {
            "norm_before": parts[0]["norm_before"],
            "norm_after": parts[-1]["norm_after"],
            "coef": coef,
            "clipped": clipped,
        }

    def get_config(self) -> dict[str, Any]:
        return {"rules": [keras.saving.serialize_keras_object(r) for r in self.rules]}

    def __repr__(self) -> str:
        return f"chain({', '.join(repr(r) for r in self.rules)})"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Chain:
        return cls([keras.saving.deserialize_keras_object(r) for r in config["rules"]])


def chain(*rules: Rule) -> Chain:
    """Compose rules, applied left to right: ``chain(AGC(0.01), ZClip())``."""
    return Chain(rules)


def _layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer inside `model`, nested ones included (subclassed models too)."""
    # `_flatten_layers` is Keras's own recursive walk (it sees layers held in attributes and
    # lists of subclassed models and layers, which `model.layers` does not always list).
    return list(model._flatten_layers(include_self=False, recursive=True))


def final_classifier(model: keras.Model) -> list[str]:
    """Paths of the variables of the model's last Dense layer (AGC leaves them alone)."""
    dense = [layer for layer in _layers(model) if isinstance(layer, keras.layers.Dense)]
    return [v.path for v in dense[-1].trainable_variables] if dense else []


class _ClipState:
    """The optimizer's clipping counters (a plain holder, so Keras tracks each variable once)."""

    def __init__(self, optimizer: keras.optimizers.Optimizer) -> None:
        def var(name: str) -> Any:
            return optimizer.add_variable((), initializer="zeros", dtype="float32", name=name)

        self.steps = var("clip_steps")
        self.clipped = var("clip_clipped_steps")
        self.skipped = var("clip_skipped_steps")
        self.norm_sum = var("clip_norm_sum")
        self.norm_max = var("clip_norm_max")
        self.norm_last = var("clip_norm_last")
        self.coef_last = var("clip_coef_last")


@_register
class ClippedOptimizer(keras.optimizers.Optimizer):
    """A Keras optimizer that applies `rule` to the gradients, then `inner_optimizer`.

    `nonfinite="skip"` (default) skips steps with NaN/inf gradients: no variable and no
    optimizer state changes; `None` passes them on as Keras would. The inner optimizer's
    `clipnorm` / `global_clipnorm` / `clipvalue` apply after the rule. Not supported on the
    inner optimizer: `loss_scale_factor` (wrap in `LossScaleOptimizer` instead) and
    `gradient_accumulation_steps` (the rule would see partial gradients).
    """

    def __init__(
        self,
        inner_optimizer: keras.optimizers.Optimizer,
        rule: Rule,
        nonfinite: str | None = "skip",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise ValueError(
                f"ClippedOptimizer takes no {sorted(kwargs)}: set clipnorm, clipvalue, "
                "global_clipnorm, weight_decay etc. on the inner optimizer"
            )
        if not isinstance(rule, Rule):
            raise TypeError(f"rule must be AGC, AutoClip, ZClip or chain(...), got {rule!r}")
        if nonfinite not in ("skip", None):
            raise ValueError(f"nonfinite must be 'skip' or None, got {nonfinite!r}")
        if inner_optimizer.loss_scale_factor or inner_optimizer.gradient_accumulation_steps:
            raise ValueError(
                "the inner optimizer must not scale the loss or accumulate gradients: wrap "
                "LossScaleOptimizer(ClippedOptimizer(...)) for mixed precision"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.rule = rule
        self.nonfinite = nonfinite

    def build(self, var_list: list[Any]) -> None:
        self._clip_state = _ClipState(self)
        self.rule.build(self)
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self) -> list[Any]:
        return self._variables + self.inner_optimizer.variables

    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        if not self.built:  # type: ignore[has-type]
            if trainable_variables is None:
                raise ValueError("the first apply() needs trainable_variables to build with")
            with keras.name_scope(self.name, caller=self):
                self.build(list(trainable_variables))
            self.built = True
        variables = list(trainable_variables or self._trainable_variables)
        grads = list(grads)
        if self.nonfinite is None:
            self._step(grads, variables)
            return
        present = [g for g in grads if g is not None]
        finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in present]))
        ops.cond(finite, lambda: self._step(grads, variables), self._skip)

    def _step(self, grads: list[Any], variables: list[Any]) -> None:
        clipped, stats = self.rule.clip(grads, variables)
        s = self._clip_state
        norm = ops.cast(stats["norm_before"], "float32")
        s.steps.assign_add(1.0)
        s.clipped.assign_add(ops.cast(stats["clipped"], "float32"))
        s.norm_sum.assign_add(norm)
        s.norm_max.assign(ops.maximum(s.norm_max, norm))
        s.norm_last.assign(norm)
        s.coef_last.assign(ops.cast(stats["coef"], "float32"))
        self.inner_optimizer.apply(clipped, variables)

    def _skip(self) -> None:
        self._clip_state.steps.assign_add(1.0)
        self._clip_state.skipped.assign_add(1.0)

    def clip_summary(self) -> dict[str, float | int | None]:
        """Steps, clipped steps and clip rate, skipped steps, last/mean/max pre-clip norm."""
        if not self.built:
            return {"steps": 0, "clipped": 0, "clip_rate": 0.0, "skipped": 0}
        s = self._clip_state
        steps, skipped = int(s.steps.numpy()), int(s.skipped.numpy())
        taken = steps - skipped
        clipped = int(s.clipped.numpy())
        return {
            "steps": steps,
            "clipped": clipped,
            "clip_rate": clipped / taken if taken else 0.0,
            "skipped": skipped,
            "norm_last": float(s.norm_last.numpy()) if taken else None,
            "norm_mean": float(s.norm_sum.numpy()) / taken if taken else None,
            "norm_max": float(s.norm_max.numpy()) if taken else None,
            "coef_last": float(s.coef_last.numpy()) if taken else None,
        }

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self.inner_optimizer.learning_rate = value

    @property
    def iterations(self) -> Any:
        return self.inner_optimizer.iterations

    def finalize_variable_values(self, var_list: list[Any]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "rule": keras.saving.serialize_keras_object(self.rule),
            "nonfinite": self.nonfinite,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> ClippedOptimizer:
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        rule = keras.saving.deserialize_keras_object(config.pop("rule"), custom_objects)
        return cls(inner, rule, **config)
