"""Keras 3: adaptive gradient clipping through the optimizer, and pruning by callback.

Keras clips through its optimizers (`clipnorm`, `clipvalue`, `global_clipnorm`); there is no
`keras.callbacks.GradientClipping`. `ClippedOptimizer` wraps any Keras optimizer and applies
an adaptive rule first: `AGC` (Brock et al. 2021), `AutoClip` (Seetharaman et al. 2020),
`ZClip` (Kumar et al. 2025), or `chain(...)` of them. The inner optimizer's own `clipnorm`
(each variable alone), `global_clipnorm` (all together) or `clipvalue` (each element) still
act, after the rule, with Keras's own semantics::

    opt = ClippedOptimizer(keras.optimizers.Adam(1e-3, global_clipnorm=5.0), AGC(0.01))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    model.fit(...)
    opt.clip_summary()        # steps, clip rate, skipped steps, norms

A step whose gradients hold NaN or inf is skipped (nothing updated, `skipped` counted) unless
``nonfinite=None``. Under mixed precision wrap the other way round:
``LossScaleOptimizer(ClippedOptimizer(...))`` unscales before the rule sees the gradients.

`PruningCallback` prunes the kernels of Dense, EinsumDense, Conv and Embedding layers by
magnitude on a TF Model Optimization schedule (`ConstantSparsity`, `PolynomialDecay`), on
Sequential, functional and subclassed models. No layer is wrapped: the model stays a plain
Keras model (its `.keras` file loads anywhere, zeros in place); the callback keeps the masks
and re-applies them after every optimizer step. `strip_pruning()` ends that.

Rules and schedules are written with `keras.ops`; the clipping state lives in optimizer
variables, so it is saved with the model. Tested with the torch backend.
"""

try:
    import keras as _keras  # type: ignore[import-untyped]  # noqa: F401
except ModuleNotFoundError as exc:  # Keras is there, the backend it is configured for is not
    if exc.name in ("tensorflow", "jax", "torch"):
        raise ImportError(
            f"Keras 3 is configured for a backend that is not installed ({exc.name}); set "
            "KERAS_BACKEND=torch (secateurs needs PyTorch anyway) before importing keras"
        ) from exc
    raise

from secateurs.integrations.keras.clipping import (
    AGC,
    AutoClip,
    Chain,
    ClippedOptimizer,
    Rule,
    ZClip,
    chain,
    final_classifier,
)
from secateurs.integrations.keras.pruning import (
    ConstantSparsity,
    PolynomialDecay,
    PruningCallback,
    PruningSchedule,
)

__all__ = [
    "AGC",
    "AutoClip",
    "Chain",
    "ClippedOptimizer",
    "ConstantSparsity",
    "PolynomialDecay",
    "PruningCallback",
    "PruningSchedule",
    "Rule",
    "ZClip",
    "chain",
    "final_classifier",
]
