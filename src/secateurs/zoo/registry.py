"""The demo tasks: model, data, loss, metric, training recipe and budget, by name.

`TASKS` is a read-only mapping from name to `Task`. A task knows how to build a fresh
model for a seed, load its (embedded) data, train for a number of steps with an optional
gradient clipping rule, and evaluate its metric. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from secateurs.train import Callback, FitResult, fit
from secateurs.zoo.data import Split

if TYPE_CHECKING:
    from secateurs.zoo.gan import GAN

EXAMPLE_BATCH = 64  # inputs per latency measurement (MACs are reported per example)


@dataclass(frozen=True)
class TaskData:
    """What a task trains and evaluates on. For classifiers `train` is a DataLoader of
    (inputs, labels) and `val`/`test` are loaders; for a GAN `train` is a tensor of real
    images and `val`/`test` are unused (the score compares with held-out test digits)."""

    train: Any
    val: Any
    test: Any
    example: Any  # an input batch for the deployable module (latency, tracing)


@dataclass(frozen=True)
class Budget:
    """Training budget of a task: optimizer steps, batch size, learning rate, how often to
    evaluate while training (for steps-to-target) and how long to fine-tune after pruning."""

    steps: int
    batch_size: int
    lr: float
    eval_every: int
    finetune_steps: int


@dataclass(frozen=True)
class Task:
    """A named demo task; see the module docstring."""

    name: str
    description: str
    metric: str  # "accuracy", "perplexity" or "frechet"
    higher_is_better: bool
    target: float  # metric value that counts as "converged" for steps-to-target
    budget: Budget
    arch: str  # "module:function" factory of the deployable module (for secateurs.io)
    build_fn: Callable[[], nn.Module]
    data_fn: Callable[[int, int], TaskData]
    evaluate_fn: Callable[[nn.Module, TaskData, str], dict[str, float]]
    train_fn: Callable[..., FitResult]
    deployable_fn: Callable[[nn.Module], nn.Module] = field(default=lambda m: m)
    prune_sparsity: float = 0.8  # unstructured sparsity used by `secateurs compare`
    structured_ratio: float = 0.5  # structured channel ratio used by `secateurs compare`
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def model(self, seed: int = 0) -> nn.Module:
        """A freshly initialised model; the same seed gives the same weights."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return self.build_fn()

    def data(self, seed: int = 0, batch_size: int | None = None) -> TaskData:
        """The task's data; `seed` fixes the training order (the split itself is fixed)."""
        return self.data_fn(seed, batch_size or self.budget.batch_size)

    def train(
        self,
        model: nn.Module,
        data: TaskData,
        *,
        steps: int | None = None,
        lr: float | None = None,
        clip: Callable[[nn.Module], Any] | None = None,
        aux_clip: Callable[[nn.Module], Any] | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = False,
        seed: int = 0,
    ) -> FitResult:
        """Train `model` in place for `steps` optimizer steps (default: the budget).

        `clip` acts on the deployable network's gradients, `aux_clip` on a GAN's critic.
        """
        steps = self.budget.steps if steps is None else steps
        lr = self.budget.lr if lr is None else lr
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        return self.train_fn(
            model,
            data,
            steps=steps,
            lr=lr,
            clip=clip,
            aux_clip=aux_clip,
            callbacks=callbacks,
            progress=progress,
            seed=seed,
        )

    def evaluate(self, model: nn.Module, data: TaskData, split: str = "val") -> dict[str, float]:
        """Metrics on `split` ("val" or "test"); always includes `self.metric`."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self.evaluate_fn(model, data, split)

    def deployable(self, model: nn.Module) -> nn.Module:
        """The module one ships, prunes and measures (a GAN's generator; else the model)."""
        return self.deployable_fn(model)

    def better(self, a: float, b: float) -> bool:
        """True when metric value `a` is strictly better than `b`."""
        return a > b if self.higher_is_better else a < b

    def reached(self, value: float) -> bool:
        """True when a metric value meets the task's target."""
        return value >= self.target if self.higher_is_better else value <= self.target


# ---- classifiers on digits -------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _digits_split(image: bool) -> Split:
    """The fixed digits split, parsed once per process (tensors are shared: do not modify)."""
    from secateurs.zoo.data import digits

    return digits(image=image)


def _digits_data(image: bool) -> Callable[[int, int], TaskData]:
    def load(seed: int, batch_size: int) -> TaskData:
        split = _digits_split(image)
        train, val, test = split.loaders(batch_size=batch_size, seed=seed)
        return TaskData(train=train, val=val, test=test, example=split.x_test[:EXAMPLE_BATCH])

    return load


def _fit_loader(
    model: nn.Module,
    data: TaskData,
    *,
    steps: int,
    lr: float,
    clip: Callable[[nn.Module], Any] | None,
    aux_clip: Callable[[nn.Module], Any] | None,
    callbacks: Sequence[Callback],
    progress: bool,
    seed: int,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
) -> FitResult:
    del aux_clip, seed  # single network; the loader's generator already fixes the order
    epochs = math.ceil(steps / max(1, len(data.train)))
    return fit(
        model,
        data.train,
        lr=lr,
        loss_fn=loss_fn,
        clip=clip,
        epochs=epochs,
        max_steps=steps,
        callbacks=callbacks,
        progress=progress,
    )


def _eval_classifier(model: nn.Module, data: TaskData, split: str) -> dict[str, float]:
    from secateurs.measure import accuracy, mean_loss

    loader = data.val if split == "val" else data.test
    return {"accuracy": accuracy(model, loader), "loss": mean_loss(model, loader)}


def _classifier(
    name: str, description: str, build: Callable[[], nn.Module], arch: str, image: bool, **kw: Any
) -> Task:
    budget = kw.pop(
        "budget", Budget(steps=300, batch_size=64, lr=2e-3, eval_every=25, finetune_steps=100)
    )
    return Task(
        name=name,
        description=description,
        metric="accuracy",
        higher_is_better=True,
        target=kw.pop("target", 0.9),
        budget=budget,
        arch=arch,
        build_fn=build,
        data_fn=_digits_data(image),
        evaluate_fn=_eval_classifier,
        train_fn=_fit_loader,
        **kw,
    )


# ---- character language model ------------------------------------------------------------


def _text_data(seed: int, batch_size: int) -> TaskData:
    from secateurs.zoo.text import char_corpus

    corpus = char_corpus(seq_len=64)
    windows = corpus.train
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(
        TensorDataset(windows[:, :-1], windows[:, 1:]),
        batch_size=batch_size,
        shuffle=True,
        generator=g,
    )
    return TaskData(train=train, val=corpus.val, test=corpus.test, example=corpus.test[:8, :-1])


def _fit_lm(model: nn.Module, data: TaskData, **kw: Any) -> FitResult:
    from secateurs.zoo.charlm import lm_loss

    return _fit_loader(model, data, loss_fn=lm_loss, **kw)


def _eval_lm(model: nn.Module, data: TaskData, split: str) -> dict[str, float]:
    from secateurs.zoo.charlm import perplexity

    ppl = perplexity(model, data.val if split == "val" else data.test)
    return {"perplexity": ppl, "bits_per_char": math.log2(ppl)}


# ---- GANs --------------------------------------------------------------------------------


def _gan_data(seed: int, batch_size: int) -> TaskData:
    del seed  # batches are drawn by the training loop's own seeded generator
    split = _digits_split(True)
    noise = torch.randn(EXAMPLE_BATCH, 32, generator=torch.Generator().manual_seed(0))
    return TaskData(train=split.x_train, val=None, test=None, example=noise)


def _fit_gan(model: nn.Module, data: TaskData, *, steps: int, lr: float, **kw: Any) -> FitResult:
    from secateurs.zoo.gan import train_gan

    return train_gan(cast("GAN", model), data.train, steps=steps, lr=lr, **kw)


def _eval_gan(model: nn.Module, data: TaskData, split: str) -> dict[str, float]:
    from secateurs.zoo.gan import sample
    from secateurs.zoo.gan_score import digit_scorer

    del data
    # validation and test use different fixed noise, like different held-out samples
    gan = cast("GAN", model)
    images = sample(gan.generator, 1000, gan.z_dim, seed=1234 if split == "val" else 4321)
    return digit_scorer().score(images)


def _generator(model: nn.Module) -> nn.Module:
    """The part of a GAN that is pruned, measured and saved."""
    return cast("GAN", model).generator


def _gan_task(kind: str) -> Task:
    from secateurs.zoo import gan

    recipe = gan.RECIPES[kind]
    described = {
        "wgan": "WGAN: MLP generator, weight-clipped MLP critic (5 critic steps per step)",
        "dcgan": "DCGAN: transposed-conv generator, conv discriminator, logistic loss",
    }
    return Task(
        name=kind,
        description=described[kind] + "; score = Frechet distance in digit-classifier features",
        metric="frechet",
        higher_is_better=False,
        target=15.0,
        budget=Budget(
            steps=recipe.steps, batch_size=64, lr=recipe.lr, eval_every=100, finetune_steps=200
        ),
        arch=f"secateurs.zoo.gan:{kind}_generator",
        build_fn=getattr(gan, kind),
        data_fn=_gan_data,
        evaluate_fn=_eval_gan,
        train_fn=_fit_gan,
        deployable_fn=_generator,
        prune_sparsity=0.7,
        structured_ratio=0.3,
    )


def _build_tasks() -> dict[str, Task]:
    from secateurs.zoo.charlm import char_lm
    from secateurs.zoo.models import mlp, rescnn
    from secateurs.zoo.recurrent import row_lstm
    from secateurs.zoo.vit import tiny_vit

    return {
        "mlp": _classifier(
            "mlp", "LeNet-300-100-shaped MLP on 8x8 digits", mlp, "secateurs.zoo.models:mlp", False
        ),
        "cnn": _classifier(
            "cnn",
            "residual CNN (BatchNorm, 1x1 shortcut) on 8x8 digits",
            rescnn,
            "secateurs.zoo.models:rescnn",
            True,
            structured_ratio=0.5,
        ),
        "vit": _classifier(
            "vit",
            "tiny ViT: four 4x4 patches, 2 pre-norm blocks, 4 heads, on 8x8 digits",
            tiny_vit,
            "secateurs.zoo.vit:tiny_vit",
            True,
            prune_sparsity=0.6,
            structured_ratio=0.25,
        ),
        "lstm": _classifier(
            "lstm",
            "LSTM reading digits row by row (8 steps x 8 pixels)",
            row_lstm,
            "secateurs.zoo.recurrent:row_lstm",
            False,
            prune_sparsity=0.7,
            structured_ratio=0.25,
            target=0.85,
        ),
        "charlm": Task(
            name="charlm",
            description="character Transformer LM on Python's pydoc topics (split by topic)",
            metric="perplexity",
            higher_is_better=False,
            target=8.0,
            budget=Budget(steps=300, batch_size=32, lr=3e-3, eval_every=50, finetune_steps=100),
            arch="secateurs.zoo.charlm:char_lm",
            build_fn=char_lm,
            data_fn=_text_data,
            evaluate_fn=_eval_lm,
            train_fn=_fit_lm,
            prune_sparsity=0.5,
            structured_ratio=0.25,
        ),
        "wgan": _gan_task("wgan"),
        "dcgan": _gan_task("dcgan"),
    }


TASKS: Mapping[str, Task] = MappingProxyType(_build_tasks())


def get_task(name: str) -> Task:
    """The task called `name`; a ValueError lists the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(TASKS)}") from None
