"""Importance criteria: small objects whose `score(target)` rates every weight (higher = keep).

A criterion that needs data (Taylor, SNIP) or training (movement) also has `prepare`, which
`prune.unstructured_` calls once before scoring. Adding a criterion means adding one class here
(and, for a name usable from the CLI, one entry in `CRITERIA`).
"""

from __future__ import annotations

import abc
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from secateurs._inputs import call_model
from secateurs.prune.targets import Target

LossFn = Callable[[Any, Any], torch.Tensor]


class Criterion(abc.ABC):
    """Base class: `score(target)` returns a float tensor shaped like the weight."""

    name = "criterion"

    def prepare(
        self,
        model: nn.Module,
        targets: Sequence[Target],
        *,
        data: Iterable | None = None,
        loss_fn: LossFn | None = None,
    ) -> None:
        """Gather what scoring needs (gradients, statistics); nothing by default."""
        return None

    @abc.abstractmethod
    def score(self, target: Target) -> torch.Tensor:
        """Importance of every element of the target's weight (higher = keep)."""

    def score_at(self, target: Target, index: torch.Tensor) -> torch.Tensor:
        """Scores of the flat positions `index` (used to sample the score distribution)."""
        return self.score(target).reshape(-1)[index]

    def score_into(self, target: Target, out: torch.Tensor | None) -> torch.Tensor:
        """`score`, optionally written into the float32 scratch `out` (which it may ignore)."""
        return self.score(target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Magnitude(Criterion):
    """|w|: the classic magnitude criterion (Han et al. 2015)."""

    name = "magnitude"

    def score(self, target: Target) -> torch.Tensor:
        return target.param.detach().abs()

    def score_at(self, target: Target, index: torch.Tensor) -> torch.Tensor:
        return target.param.detach().reshape(-1)[index].abs()

    def score_into(self, target: Target, out: torch.Tensor | None) -> torch.Tensor:
        p = target.param.detach()
        if out is None or out.shape != p.shape or out.device != p.device:
            return p.abs()
        if p.dtype != out.dtype:
            return out.copy_(p).abs_()
        return torch.abs(p, out=out)


class Random(Criterion):
    """Uniform random scores, reproducible from `seed` and the parameter's name."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def score(self, target: Target) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(target.name.encode()))
        p = target.param
        return torch.rand(p.shape, generator=g, dtype=torch.float32).to(p.device)

    def __repr__(self) -> str:
        return f"Random(seed={self.seed})"


def _batches(data: Iterable, n: int) -> Iterable[tuple[Any, Any]]:
    for i, batch in enumerate(data):
        if i >= n:
            return
        if not (isinstance(batch, tuple | list) and len(batch) == 2):
            raise TypeError("data must yield (inputs, targets) pairs")
        yield batch[0], batch[1]


def _per_batch_grads(
    model: nn.Module,
    targets: Sequence[Target],
    data: Iterable,
    loss_fn: LossFn | None,
    batches: int,
    each: Callable[[Target, torch.Tensor], None],
) -> None:
    """Run `batches` forward/backward passes; call `each(target, grad)` per batch.

    The model's own `.grad` fields and training mode are restored afterwards.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = [t.param for t in targets]
    saved = [p.grad for p in params]
    was_training = model.training
    model.train()
    seen = 0
    try:
        for x, y in _batches(data, batches):
            for p in params:
                p.grad = None
            device = params[0].device
            x = x.to(device) if isinstance(x, torch.Tensor) else x
            y = y.to(device) if isinstance(y, torch.Tensor) else y
            grads = torch.autograd.grad(loss_fn(call_model(model, x), y), params, allow_unused=True)
            for t, g in zip(targets, grads, strict=True):
                each(t, torch.zeros_like(t.param) if g is None else g.detach())
            seen += 1
    finally:
        for p, g in zip(params, saved, strict=True):
            p.grad = g
        model.train(was_training)
    if seen == 0:
        raise ValueError("data yielded no batches")


class Taylor(Criterion):
    """First-order Taylor importance |w * dL/dw| (Molchanov et al. 2017).

    Uses the gradients summed over `batches` batches of `data` when data is given, otherwise
    the `.grad` already held by the parameters (call `loss.backward()` first).
    """

    name = "taylor"

    def __init__(self, batches: int = 1) -> None:
        if batches < 1:
            raise ValueError(f"batches must be >= 1, got {batches}")
        self.batches = batches
        self._grads: dict[int, torch.Tensor] = {}

    def prepare(self, model, targets, *, data=None, loss_fn=None) -> None:
        self._grads = {}
        if data is None:
            missing = [t.name for t in targets if t.param.grad is None]
            if missing:
                raise ValueError(
                    f"the taylor criterion needs gradients; {missing[:3]} have none: pass "
                    "data= (and loss_fn=) or call loss.backward() before pruning"
                )
            self._grads = {id(t.param): t.param.grad.detach() for t in targets}
            return

        def add(t: Target, g: torch.Tensor) -> None:
            k = id(t.param)
            self._grads[k] = self._grads[k] + g if k in self._grads else g.clone()

        _per_batch_grads(model, targets, data, loss_fn, self.batches, add)

    def score(self, target: Target) -> torch.Tensor:
        g = self._grads.get(id(target.param))
        if g is None:
            raise ValueError(f"taylor criterion was not prepared for {target.name}")
        return (target.param.detach() * g).abs()

    def __repr__(self) -> str:
        return f"Taylor(batches={self.batches})"


class SNIP(Criterion):
    """Connection sensitivity sum_b |w * dL_b/dw| over a few batches (Lee et al. 2019).

    Meant for pruning at initialisation, before training; needs `data` (and `loss_fn`).
    """

    name = "snip"

    def __init__(self, batches: int = 3) -> None:
        if batches < 1:
            raise ValueError(f"batches must be >= 1, got {batches}")
        self.batches = batches
        self._scores: dict[int, torch.Tensor] = {}

    def prepare(self, model, targets, *, data=None, loss_fn=None) -> None:
        if data is None:
            raise ValueError("the snip criterion needs data=: an iterable of (inputs, targets)")
        self._scores = {}

        def add(t: Target, g: torch.Tensor) -> None:
            s = (t.param.detach() * g).abs()
            k = id(t.param)
            self._scores[k] = self._scores[k] + s if k in self._scores else s

        _per_batch_grads(model, targets, data, loss_fn, self.batches, add)

    def score(self, target: Target) -> torch.Tensor:
        s = self._scores.get(id(target.param))
        if s is None:
            raise ValueError(f"snip criterion was not prepared for {target.name}")
        return s

    def __repr__(self) -> str:
        return f"SNIP(batches={self.batches})"


class Movement(Criterion):
    """Movement importance S = -sum_t w_t * dL/dw_t, accumulated while fine-tuning (Sanh et al.
    2020): weights moving away from zero score high.

    Call `attach(model)` before training (a `PruningCallback` does it for you); every backward
    pass then adds to the scores through tensor hooks. `detach()` removes the hooks.
    """

    name = "movement"

    def __init__(self) -> None:
        self._scores: dict[int, torch.Tensor] = {}
        self._handles: list[Any] = []

    def attach(self, model: nn.Module, targets: Sequence[Target] | None = None) -> Movement:
        from secateurs.prune.targets import find_targets

        self.detach()
        for t in targets if targets is not None else find_targets(model):
            p = t.param
            if not p.requires_grad:
                continue
            self._scores.setdefault(id(p), torch.zeros_like(p, dtype=torch.float32))

            def hook(grad: torch.Tensor, p: torch.Tensor = p) -> None:
                self._scores[id(p)].sub_((p.detach() * grad.detach()).float())

            self._handles.append(p.register_hook(hook))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def prepare(self, model, targets, *, data=None, loss_fn=None) -> None:
        missing = [t.name for t in targets if id(t.param) not in self._scores]
        if missing:
            raise ValueError(
                f"the movement criterion has no scores for {missing[:3]}: call "
                "criterion.attach(model) and train before pruning (PruningCallback does this)"
            )

    def score(self, target: Target) -> torch.Tensor:
        return self._scores[id(target.param)]

    def __getstate__(self) -> dict[str, Any]:
        return {"_scores": self._scores, "_handles": []}


CRITERIA: dict[str, type[Criterion]] = {
    "magnitude": Magnitude,
    "random": Random,
    "taylor": Taylor,
    "snip": SNIP,
    "movement": Movement,
}


def get_criterion(spec: str | Criterion) -> Criterion:
    """A criterion object from a name (``"magnitude"``, ...) or the object itself."""
    if isinstance(spec, Criterion):
        return spec
    if isinstance(spec, str) and spec.lower() in CRITERIA:
        return CRITERIA[spec.lower()]()
    raise ValueError(
        f"criterion must be one of {sorted(CRITERIA)} or a Criterion object, got {spec!r}"
    )
