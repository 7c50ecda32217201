"""Keras 3 (torch backend): clipping numbers against secateurs.clip on the same gradients,
pruning on digits with Sequential, functional and subclassed models, .keras round trips."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
import torch
from torch import nn

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # pragma: no cover - another backend chosen by the user
    pytest.skip("these tests run Keras on its torch backend", allow_module_level=True)

from secateurs import clip  # noqa: E402
from secateurs.integrations import keras as sk  # noqa: E402
from secateurs.zoo.data import digits_arrays  # noqa: E402

SHAPES = [(12, 8), (8,), (8, 5), (5,)]  # Keras kernels: (in, out)


def _grad_steps(steps: int, spike_at: int = -1) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for s in range(steps):
        scale = 30.0 if s == spike_at else 1.0 + 0.1 * s
        out.append([(rng.standard_normal(sh) * scale).astype(np.float32) for sh in SHAPES])
    return out


def _keras_vars() -> list:
    rng = np.random.default_rng(1)
    return [
        keras.Variable(rng.standard_normal(sh).astype(np.float32) * 0.3, name=f"v{i}")
        for i, sh in enumerate(SHAPES)
    ]


def _torch_model(variables) -> nn.Module:
    """The same weights as nn.Linear layers (torch keeps outputs on dim 0: the transpose)."""
    net = nn.Sequential(nn.Linear(12, 8), nn.Linear(8, 5))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(variables[0].numpy().T))
        net[0].bias.copy_(torch.tensor(variables[1].numpy()))
        net[1].weight.copy_(torch.tensor(variables[2].numpy().T))
        net[1].bias.copy_(torch.tensor(variables[3].numpy()))
    return net


def _set_torch_grads(net: nn.Module, grads: list[np.ndarray]) -> None:
    net[0].weight.grad = torch.tensor(grads[0].T.copy())
    net[0].bias.grad = torch.tensor(grads[1])
    net[1].weight.grad = torch.tensor(grads[2].T.copy())
    net[1].bias.grad = torch.tensor(grads[3])


def _torch_grads(net: nn.Module) -> list[np.ndarray]:
    return [
        net[0].weight.grad.numpy().T,
        net[0].bias.grad.numpy(),
        net[1].weight.grad.numpy().T,
        net[1].bias.grad.numpy(),
    ]


def _built(rule):
    holder = keras.optimizers.SGD()
    rule.build(holder)
    return rule


@pytest.mark.parametrize(
    ("make_keras", "make_torch"),
    [
        (lambda: sk.AGC(0.02), lambda: clip.AGC(0.02, skip_classifier=False)),
        (lambda: sk.AutoClip(25, history=5), lambda: clip.AutoClip(25, history=5)),
        (lambda: sk.ZClip(z=1.5, alpha=0.8, warmup=3), lambda: clip.ZClip(1.5, 0.8, 3)),
        (
            lambda: sk.chain(sk.AGC(0.05), sk.ZClip(z=1.5, warmup=3)),
            lambda: clip.chain(clip.AGC(0.05, skip_classifier=False), clip.ZClip(1.5, 0.97, 3)),
        ),
    ],
    ids=["agc", "autoclip", "zclip", "chain"],
)
def test_keras_rules_give_the_numbers_of_secateurs_clip(make_keras, make_torch):
    variables = _keras_vars()
    net = _torch_model(variables)
    rule_k, rule_t = _built(make_keras()), make_torch()
    clipped_steps = 0
    for grads in _grad_steps(10, spike_at=7):
        _set_torch_grads(net, grads)
        stats_t = rule_t(net)
        out, stats_k = rule_k.clip([keras.ops.convert_to_tensor(g) for g in grads], variables)
        for got, want in zip(out, _torch_grads(net), strict=True):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=2e-5, atol=1e-7)
        for key in ("norm_before", "norm_after", "coef"):
            assert float(stats_k[key]) == pytest.approx(getattr(stats_t, key), rel=2e-5), key
        assert bool(float(stats_k["clipped"])) == stats_t.clipped
        clipped_steps += stats_t.clipped
    assert clipped_steps > 0  # the comparison saw clipping happen


def test_inner_global_clipnorm_acts_after_the_rule_and_nonfinite_steps_are_skipped():
    variables = _keras_vars()
    start = [v.numpy().copy() for v in variables]
    opt = sk.ClippedOptimizer(keras.optimizers.SGD(1.0, global_clipnorm=0.05), sk.AGC(0.5))
    grads = _grad_steps(1)[0]
    agc, _ = _built(sk.AGC(0.5)).clip([keras.ops.convert_to_tensor(g) for g in grads], variables)
    opt.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    agc = [keras.ops.convert_to_numpy(g) for g in agc]
    total = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in agc))
    assert total > 0.05
    for v, s, g in zip(variables, start, agc, strict=True):
        np.testing.assert_allclose(s - v.numpy(), g * 0.05 / total, rtol=1e-4, atol=1e-7)
    # a NaN step: nothing moves, the inner optimizer does not count it
    moved = [v.numpy().copy() for v in variables]
    bad = [g.copy() for g in grads]
    bad[2][0, 0] = np.nan
    opt.apply([keras.ops.convert_to_tensor(g) for g in bad], variables)
    for v, m in zip(variables, moved, strict=True):
        assert np.array_equal(v.numpy(), m)
    summary = opt.clip_summary()
    assert summary["skipped"] == 1 and summary["steps"] == 2
    assert int(opt.iterations.numpy()) == 1


def _sequential() -> keras.Model:
    dense = keras.layers.Dense
    return keras.Sequential(
        [keras.Input((64,)), dense(48, activation="relu"), dense(24, activation="relu"), dense(10)]
    )


def _functional() -> keras.Model:
    x = keras.Input((64,))
    h = keras.layers.Dense(48, activation="relu")(x)
    h = keras.layers.Concatenate()(
        [keras.layers.Dense(12, activation="relu")(h), keras.layers.Dense(12, activation="tanh")(h)]
    )
    return keras.Model(x, keras.layers.Dense(10)(h))


@keras.saving.register_keras_serializable(package="secateurs_tests")
class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.body = [keras.layers.Dense(48, activation="relu"), keras.layers.Dense(24)]
        self.head = keras.layers.Dense(10)

    def call(self, x):
        for layer in self.body:
            x = layer(x)
        return self.head(keras.ops.relu(x))


@pytest.mark.parametrize(
    ("make", "schedule"),
    [
        (_sequential, lambda: sk.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=8, frequency=2)),
        (_functional, lambda: sk.ConstantSparsity(0.6, begin_step=3, frequency=100)),
        (Subclassed, lambda: sk.PolynomialDecay(0.1, 0.7, begin_step=2, end_step=8, frequency=3)),
    ],
    ids=["sequential", "functional", "subclassed"],
)
def test_pruning_callback_reaches_the_target_and_the_keras_file_keeps_the_zeros(
    make, schedule, tmp_path
):
    keras.utils.set_random_seed(0)
    x, y = digits_arrays()
    x, y = x[:384], y[:384]
    model = make()
    model(keras.ops.zeros((1, 64)))
    opt = sk.ClippedOptimizer(
        keras.optimizers.Adam(3e-3), sk.AGC(0.05, exclude=sk.final_classifier(model))
    )
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    sched = schedule()
    cb = sk.PruningCallback(sched)
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[cb])  # 12 steps
    target = sched.sparsity(12)
    total = sum(int(np.prod(k.shape)) for k in cb.kernels)
    zeros = sum(int((k.numpy() == 0).sum()) for k in cb.kernels)
    assert zeros == round(target * total)
    head = sk.final_classifier(model)[0]
    assert all(k.path != head for k in cb.kernels)
    assert (
        len(cb.kernels)
        == len(
            [
                la
                for la in model._flatten_layers(include_self=False)
                if isinstance(la, keras.layers.Dense)
            ]
        )
        - 1
    )
    cb.strip_pruning()
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    for a, b in zip(model.weights, reloaded.weights, strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(
        reloaded.predict(x[:32], verbose=0), model.predict(x[:32], verbose=0), rtol=1e-5, atol=1e-6
    )
    assert reloaded.optimizer.clip_summary() == opt.clip_summary()


def test_tfmot_schedule_semantics():
    s = sk.PolynomialDecay(0.2, 0.8, begin_step=10, end_step=30, power=3, frequency=5)
    assert [s.prune_now(t) for t in (9, 10, 12, 15, 30, 35)] == [
        False,
        True,
        False,
        True,
        True,
        False,
    ]
    assert s.sparsity(10) == pytest.approx(0.2)
    assert s.sparsity(20) == pytest.approx(0.8 + (0.2 - 0.8) * 0.5**3)
    assert s.sparsity(40) == pytest.approx(0.8)
    c = sk.ConstantSparsity(0.5, begin_step=0, frequency=10)
    assert c(20) == (True, 0.5) and c(21) == (False, 0.5)


def test_exclude_nothing_with_layer_scope_prunes_every_kernel_to_the_sparsity():
    keras.utils.set_random_seed(0)
    x, y = digits_arrays()
    tokens = (x[:128] * 16).round().astype("int32")  # the 64 pixels as tokens 0..16
    model = keras.Sequential(
        [
            keras.Input((64,), dtype="int32"),
            keras.layers.Embedding(17, 8),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    cb = sk.PruningCallback(sk.ConstantSparsity(0.5, begin_step=0), scope="layer", exclude=[])
    model.fit(tokens, y[:128], batch_size=64, epochs=1, verbose=0, callbacks=[cb])
    assert len(cb.kernels) == 2  # the embeddings and the classifier
    for kernel in cb.kernels:
        assert int((kernel.numpy() == 0).sum()) == kernel.numpy().size // 2
