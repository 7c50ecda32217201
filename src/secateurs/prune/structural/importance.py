"""Importance of each unit: weight norms, BatchNorm scales, Taylor, activation statistics, random.

Every criterion writes `Unit.importance` (larger = keep). The weight criteria read the
parameter slices that the unit owns; the data criteria hook the *inputs* of the layers that
consume a unit (its post-activation value) on calibration batches.
"""

from __future__ import annotations

import abc
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from secateurs._conv1d import is_conv1d
from secateurs._inputs import call_model
from secateurs.prune.structural.groups import Group, Unit
from secateurs.prune.structural.surgery import parameter_slices


def _norm(model: nn.Module, unit: Unit, p: int) -> float:
    total = 0.0
    for s in unit.slices:
        for t in parameter_slices(model.get_submodule(s.module), s.role, list(s.positions)):
            total += float(t.detach().abs().pow(p).sum())
    return total ** (1.0 / p)


def _bn(model: nn.Module, unit: Unit) -> float | None:
    values = []
    for s in unit.slices:
        m = model.get_submodule(s.module)
        if s.role == "norm" and isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            values.append(float(m.weight.detach()[list(s.positions)].abs().sum()))
    return sum(values) if values else None


def _in_axis(m: nn.Module) -> int | None:
    if isinstance(m, nn.Linear) or is_conv1d(m) or isinstance(m, nn.RNNBase):
        return -1
    if isinstance(m, nn.modules.conv._ConvNd) and m.groups == 1:
        return 1
    return None


def _in_column_norms(m: nn.Module) -> torch.Tensor | None:
    """L2 norm of the weights that read each input position of `m`."""
    with torch.no_grad():
        if isinstance(m, nn.Linear):
            return m.weight.norm(dim=0)
        if is_conv1d(m):
            return m.weight.norm(dim=1)
        if isinstance(m, nn.modules.conv._ConvNd) and m.groups == 1:
            w = m.weight.transpose(0, 1) if not m.transposed else m.weight
            return w.reshape(w.shape[0], -1).norm(dim=1)
        if isinstance(m, nn.RNNBase):
            cols = [getattr(m, f"weight_ih_l0{s}") for s in ("", "_reverse")[: 1 + m.bidirectional]]
            return torch.cat(cols).norm(dim=0)
    return None


def _split_batch(batch: Any, need_target: bool) -> tuple[Any, Any]:
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return batch[0], batch[1]
    if need_target:
        raise ValueError("importance='taylor' needs data batches of (inputs, targets) pairs")
    return batch, None


def data_scores(
    model: nn.Module,
    modules: Iterable[str],
    data: Iterable,
    *,
    taylor: bool,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    """Per input position of each named module: |activation x gradient| or activation std."""
    sums: dict[str, torch.Tensor] = {}
    sq: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = defaultdict(int)
    handles = []

    def hook_for(name: str, axis: int) -> Callable:
        def pre_hook(_m: nn.Module, args: tuple) -> None:
            x = args[0]
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                return
            moved = x.movedim(axis, -1)
            if taylor:
                if not x.requires_grad:
                    return

                def grad_hook(g: torch.Tensor, moved: torch.Tensor = moved) -> None:
                    prod = moved.detach() * g.movedim(axis, -1)
                    prod = prod.reshape(prod.shape[0], -1, prod.shape[-1]).sum(1)
                    score = prod.abs().sum(0)
                    sums[name] = sums.get(name, 0) + score
                    counts[name] += prod.shape[0]

                x.register_hook(grad_hook)
            else:
                flat = moved.detach().reshape(-1, moved.shape[-1]).double()
                sums[name] = sums.get(name, 0) + flat.sum(0)
                sq[name] = sq.get(name, 0) + flat.pow(2).sum(0)
                counts[name] += flat.shape[0]

        return pre_hook

    for name in modules:
        m = model.get_submodule(name)
        axis = _in_axis(m)
        if axis is not None:
            handles.append(m.register_forward_pre_hook(hook_for(name, axis)))
    was_training = model.training
    model.eval()
    loss_fn = loss_fn or nn.functional.cross_entropy
    try:
        for batch in data:
            x, y = _split_batch(batch, taylor)
            if taylor:
                model.zero_grad(set_to_none=True)
                with torch.enable_grad():
                    loss = loss_fn(call_model(model, x), y)
                    loss.backward()
            else:
                with torch.no_grad():
                    call_model(model, x)
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if not counts:
        raise ValueError("data gave no batches; pass calibration batches for this importance")
    out = {}
    for name, total in sums.items():
        n = counts[name]
        if taylor:
            out[name] = (total / n).float()
        else:
            mean = total / n
            out[name] = (sq[name] / n - mean.pow(2)).clamp_min(0).sqrt().float()
    return out


class Importance(abc.ABC):
    """How much a unit matters (higher = keep): one method, `score(model, unit)`.

    Any object with that method works as ``structured(..., importance=obj)``; one that needs
    calibration data may also have ``prepare(model, groups, data=..., loss_fn=...)``, which
    `structured` calls once before scoring. A unit's `slices` name the parameter positions it
    owns (`surgery.parameter_slices` reads them).
    """

    name = "importance"

    def prepare(
        self,
        model: nn.Module,
        groups: list[Group],
        *,
        data: Iterable | None = None,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    ) -> None:
        """Gather what scoring needs; nothing by default."""
        return None

    @abc.abstractmethod
    def score(self, model: nn.Module, unit: Unit) -> float:
        """Importance of `unit` in `model`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class L1(Importance):
    """Sum of |w| over every parameter entry the unit owns."""

    name = "l1"

    def score(self, model: nn.Module, unit: Unit) -> float:
        return _norm(model, unit, 1)


class L2(Importance):
    """L2 norm of every parameter entry the unit owns."""

    name = "l2"

    def score(self, model: nn.Module, unit: Unit) -> float:
        return _norm(model, unit, 2)


class BNScale(Importance):
    """|gamma| of the unit's BatchNorm entries (network slimming); L2 where it has none."""

    name = "bn"

    def score(self, model: nn.Module, unit: Unit) -> float:
        value = _bn(model, unit)
        return _norm(model, unit, 2) if value is None else value


class Random(Importance):
    """Uniform random scores, reproducible from `seed`."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def score(self, model: nn.Module, unit: Unit) -> float:
        return float(torch.rand((), generator=self.gen))


class _DataImportance(Importance):
    """Scores measured at the inputs of the layers that read a unit, on calibration data."""

    taylor = False

    def __init__(self) -> None:
        self.scores: dict[str, torch.Tensor] = {}

    def prepare(
        self,
        model: nn.Module,
        groups: list[Group],
        *,
        data: Iterable | None = None,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    ) -> None:
        if data is None:
            raise ValueError(f"importance {self.name!r} needs data= (calibration batches)")
        units = [u for g in groups for u in g.units]
        consumers = {s.module for u in units for s in u.slices if s.role == "in"}
        self.scores = data_scores(model, consumers, data, taylor=self.taylor, loss_fn=loss_fn)
        if not self.taylor:
            # How much a unit's output varies, times how strongly the next layer reads it: a
            # unit that is constant (or always zero) or that nothing reads scores zero.
            for name in list(self.scores):
                norms = _in_column_norms(model.get_submodule(name))
                if norms is not None and norms.shape == self.scores[name].shape:
                    self.scores[name] = self.scores[name] * norms.float()

    def score(self, model: nn.Module, unit: Unit) -> float:
        parts = [
            float(self.scores[s.module][list(s.positions)].sum())
            for s in unit.slices
            if s.role == "in" and s.module in self.scores
        ]
        # A unit no layer reads with measured inputs (e.g. inside attention): its L2 norm.
        return sum(parts) if parts else _norm(model, unit, 2)


class Taylor(_DataImportance):
    """|activation x gradient| of the loss, summed over calibration batches (Molchanov 2019)."""

    name = "taylor"
    taylor = True


class Activation(_DataImportance):
    """Standard deviation of the unit's output times the norm of the weights that read it."""

    name = "activation"


IMPORTANCES: dict[str, type[Importance]] = {
    c.name: c for c in (L1, L2, BNScale, Taylor, Activation, Random)
}
CRITERIA = tuple(IMPORTANCES)


def resolve(importance: Any, seed: int = 0) -> Any:
    """An importance object from a name in `IMPORTANCES` or an object with `score`."""
    if isinstance(importance, str):
        if importance not in IMPORTANCES:
            raise ValueError(
                f"importance must be one of {CRITERIA} or an object, got {importance!r}"
            )
        cls = IMPORTANCES[importance]
        return cls(seed) if cls is Random else cls()
    if not callable(getattr(importance, "score", None)):
        raise TypeError(
            "importance must be a name or an object with a score(model, unit) method, got "
            f"{type(importance).__name__}"
        )
    return importance


def score(
    model: nn.Module,
    groups: list[Group],
    importance: Any,
    *,
    data: Iterable | None = None,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
) -> None:
    """Set `importance` on every unit (and key/value parent) of `groups`."""
    prepare = getattr(importance, "prepare", None)
    if callable(prepare):
        prepare(model, groups, data=data, loss_fn=loss_fn)
    for g in groups:
        for u in g.units + [p for p, _ in g.parents if p is not None]:
            u.importance = float(importance.score(model, u))


class BNScalePenalty:
    """Network slimming: an L1 penalty on BatchNorm scales, applied after each backward.

    Use as ``clip=BNScalePenalty(1e-4)`` in ``secateurs.train.fit`` (it runs once per optimizer
    step, after backward): it adds ``strength * sign(gamma)`` to every BatchNorm weight's
    gradient, the subgradient of ``strength * sum|gamma|``. Composes with a clipping rule via
    `then`.
    """

    def __init__(self, strength: float = 1e-4, then: Callable[[nn.Module], Any] | None = None):
        if not strength >= 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.strength = float(strength)
        self.then = then

    def __call__(self, model: nn.Module) -> Any:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                w = m.weight
                if w.grad is None:
                    w.grad = torch.zeros_like(w)
                w.grad.add_(torch.sign(w.detach()), alpha=self.strength)
        return self.then(model) if self.then is not None else None
