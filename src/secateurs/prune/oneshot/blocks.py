"""Where a model's repeated blocks are, and the inputs that reach the first of them.

Transformers are a stack of identical layers called one after the other, each on the output
of the one before, with the same side inputs (attention mask, position embeddings). The stack
is found without knowing the family: the `nn.ModuleList` / `nn.Sequential` of two or more
children of one class holding the most prunable weights; one forward pass of the first
calibration batch then checks that each child really receives the previous child's output
(otherwise there is no stack and the caller prunes layer by layer).

`capture` runs the model on every calibration input only until the first block: a forward
pre-hook records the block's positional and keyword arguments and stops the pass, so no
activation past the first block is ever computed or held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from secateurs._inputs import call_model

Call = tuple[tuple, dict[str, Any]]  # a module's (args, kwargs)


class _Stop(Exception):
    """Raised by a hook to end a forward pass early."""


def candidates(model: nn.Module, owners: set[int]) -> list[nn.Module]:
    """Containers of >= 2 same-class children holding prunable modules, largest first."""
    found = []
    for module in model.modules():
        if not isinstance(module, nn.ModuleList | nn.Sequential) or len(module) < 2:
            continue
        children = list(module)
        if len({type(c) for c in children}) != 1:
            continue
        held = sum(1 for c in children for sub in c.modules() if id(sub) in owners)
        if held:
            found.append((held, module))
    found.sort(key=lambda x: -x[0])
    return [m for _, m in found]


def hidden(call: Call) -> torch.Tensor | None:
    """The hidden state a block is given: its first positional argument, or `hidden_states`."""
    args, kwargs = call
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    value = kwargs.get("hidden_states")
    return value if isinstance(value, torch.Tensor) else None


def output_hidden(out: Any) -> torch.Tensor:
    """The hidden state a block returns: the output, or its first element."""
    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"a block returned {type(out).__name__}, not a tensor or tuple")
    return out


def with_hidden(call: Call, h: torch.Tensor) -> Call:
    """`call` with its hidden state replaced by `h`."""
    args, kwargs = call
    if args and isinstance(args[0], torch.Tensor):
        return (h, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": h}


@contextlib.contextmanager
def _hooks(handles: list) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def is_chain(model: nn.Module, blocks: Sequence[nn.Module], batch: Any) -> bool:
    """True when, on `batch`, each block runs once, in order, on the previous block's output."""
    seen: list[tuple[str, int, Any]] = []

    def pre(i: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            seen.append(("in", i, hidden((args, kwargs))))

        return hook

    def post(i: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            seen.append(("out", i, out))

        return hook

    handles = []
    for i, b in enumerate(blocks):
        handles.append(b.register_forward_pre_hook(pre(i), with_kwargs=True))
        handles.append(b.register_forward_hook(post(i), with_kwargs=True))
    with _hooks(handles):
        call_model(model, batch)
    expected = [(kind, i) for i in range(len(blocks)) for kind in ("in", "out")]
    if [(kind, i) for kind, i, _ in seen] != expected:
        return False
    for k in range(1, len(blocks)):
        try:
            given = output_hidden(seen[2 * k - 1][2])
        except TypeError:
            return False
        taken = seen[2 * k][2]
        if taken is None or not (taken is given or torch.equal(taken, given)):
            return False
    return True


def capture(model: nn.Module, block: nn.Module, batches: Sequence[Any]) -> list[Call]:
    """The (args, kwargs) of `block` on each calibration batch; the forward stops there."""
    calls: list[Call] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        calls.append((args, dict(kwargs)))
        raise _Stop

    with _hooks([block.register_forward_pre_hook(hook, with_kwargs=True)]):
        for batch in batches:
            try:
                call_model(model, batch)
            except _Stop:
                continue
            raise ValueError(
                f"the calibration forward pass never reached {type(block).__name__}; "
                "is the calibration what the model takes as input?"
            )
    return calls


def run_until(model: nn.Module, module: nn.Module, batch: Any) -> None:
    """Run `model` on `batch` and stop right after `module` has run (its hooks fired)."""

    def stop(*_: Any) -> None:
        raise _Stop

    with _hooks([module.register_forward_hook(stop)]):
        try:
            call_model(model, batch)
        except _Stop:
            return
    raise ValueError(f"{type(module).__name__} never ran on the calibration input")


def execution_order(model: nn.Module, modules: Sequence[nn.Module], batch: Any) -> list[int]:
    """Indices of `modules` in the order of their first call on `batch` (unused ones last)."""
    first: dict[int, int] = {}

    def pre(i: int):
        def hook(*_: Any) -> None:
            first.setdefault(i, len(first))

        return hook

    handles = [m.register_forward_pre_hook(pre(i)) for i, m in enumerate(modules)]
    with _hooks(handles):
        call_model(model, batch)
    return sorted(range(len(modules)), key=lambda i: first.get(i, len(modules) + i))
