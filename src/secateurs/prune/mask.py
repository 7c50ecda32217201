"""Pruning masks as `torch.nn.utils.parametrize` parametrizations.

The effective weight is ``where(mask, original, 0)``, so a pruned weight is exactly zero in
every forward pass whatever the optimizer does to ``original`` (momentum, weight decay, Adam),
and its gradient is zero. The mask is a bool buffer: it travels with `state_dict`, `deepcopy`
and `torch.save`.

PyTorch refuses to pickle parametrized modules (their class is generated at run time); the
modules we mask get a `__reduce_ex__` that rebuilds that class on load, and a `__deepcopy__`
that gives the copy its own class (PyTorch's default shares it, so removing a mask from the
copy would break the original).
"""

from __future__ import annotations

import copy
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize


class Mask(nn.Module):
    """Parametrization that zeroes the weights where `mask` is False."""

    mask: torch.Tensor  # a bool buffer

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        # The caller hands the mask over (no copy: a model-sized bool copy costs memory).
        self.register_buffer("mask", mask.detach().to(torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def extra_repr(self) -> str:
        kept = int(self.mask.sum())
        return f"shape={tuple(self.mask.shape)}, kept={kept}/{self.mask.numel()}"


def _plist(module: nn.Module, name: str) -> parametrize.ParametrizationList:
    """`module.parametrizations[name]`, typed (torch types module attributes as Tensor | Module)."""
    return cast(parametrize.ParametrizationList, cast(nn.ModuleDict, module.parametrizations)[name])


def get_mask(module: nn.Module, name: str) -> Mask | None:
    """The `Mask` parametrization of `module.<name>`, or None."""
    if not parametrize.is_parametrized(module, name):
        return None
    for p in _plist(module, name):
        if isinstance(p, Mask):
            return p
    return None


def original(module: nn.Module, name: str) -> torch.Tensor:
    """The stored tensor behind `module.<name>`: the Parameter that optimizers update."""
    if parametrize.is_parametrized(module, name):
        plist = _plist(module, name)
        return plist.original if hasattr(plist, "original") else cast(torch.Tensor, plist.original0)
    return getattr(module, name)


def apply_mask(module: nn.Module, name: str, keep: torch.Tensor) -> Mask:
    """Mask `module.<name>` with `keep` (True = keep), composing with an existing mask.

    Already pruned weights stay pruned. The stored original is zeroed where pruned, so that
    removing the parametrization later never resurrects old values.
    """
    keep = keep.to(torch.bool)
    existing = get_mask(module, name)
    if existing is not None:
        if existing.mask.shape != keep.shape:
            raise ValueError(f"mask shape {tuple(keep.shape)} != existing {existing.shape}")
        existing.mask.logical_and_(keep.to(existing.mask.device))
        m = existing
    else:
        tensor = getattr(module, name)
        if keep.shape != tensor.shape:
            raise ValueError(
                f"mask shape {tuple(keep.shape)} does not match {name} shape {tuple(tensor.shape)}"
            )
        m = Mask(keep.to(tensor.device))
        parametrize.register_parametrization(module, name, m, unsafe=True)
        _make_serialisable(module)
    plist = _plist(module, name)
    if len(plist) == 1:  # only our mask: the stored tensor is the weight itself
        with torch.no_grad():
            plist.original.masked_fill_(~m.mask, 0)
    return m


def share_mask(module: nn.Module, name: str, mask: Mask) -> None:
    """Register an existing `Mask` on another module whose `name` is the same tied Parameter."""
    if get_mask(module, name) is mask:
        return
    if get_mask(module, name) is not None:
        raise ValueError(f"{name} of {type(module).__name__} already has a different mask")
    parametrize.register_parametrization(module, name, mask, unsafe=True)
    _make_serialisable(module)


def remove_mask(module: nn.Module, name: str, *, apply: bool) -> None:
    """Remove the `Mask` of `module.<name>`; with `apply`, bake the zeros into the weight.

    The original Parameter object is kept, so tied weights stay tied and optimizers that hold
    it keep working.
    """
    m = get_mask(module, name)
    if m is None:
        return
    plist = _plist(module, name)
    if len(plist) != 1:
        raise ValueError(
            f"{name} of {type(module).__name__} has other parametrizations besides the mask; "
            "remove those first with torch.nn.utils.parametrize.remove_parametrizations"
        )
    if apply:
        with torch.no_grad():
            plist.original.masked_fill_(~m.mask, 0)
    parametrize.remove_parametrizations(module, name, leave_parametrized=False)
    if parametrize.is_parametrized(module):
        _make_serialisable(module)


def masked_modules(model: nn.Module) -> list[tuple[str, nn.Module, str, Mask]]:
    """Every (module name, module, tensor name, mask) in `model`."""
    out = []
    for mod_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for name in list(cast(nn.ModuleDict, module.parametrizations).keys()):
            m = get_mask(module, name)
            if m is not None:
                out.append((mod_name, module, name, m))
    return out


# --- pickling and deepcopy of parametrized modules -------------------------------------------


def _rebuild_parametrized(base: type[nn.Module], state: dict[str, Any]) -> nn.Module:
    """Unpickling target: recreate a parametrized module of class `base` from its state."""
    obj = base.__new__(base)
    obj.__setstate__(state)
    _reinject(obj)
    return obj


def _reinject(obj: nn.Module) -> None:
    # Recreate PyTorch's run-time class and its properties (the same steps as
    # register_parametrization, without touching the stored tensors).
    parametrize._inject_new_class(obj)
    for name in cast(nn.ModuleDict, obj.parametrizations):
        parametrize._inject_property(obj, name)
    _make_serialisable(obj)


def _reduce_ex(self: nn.Module, protocol: int) -> tuple:
    base = parametrize.type_before_parametrizations(self)
    return (_rebuild_parametrized, (base, dict(self.__dict__)))


def _deepcopy(self: nn.Module, memo: dict[int, Any]) -> nn.Module:
    done = memo.get(id(self))
    if done is not None:
        return done
    base = cast(type[nn.Module], parametrize.type_before_parametrizations(self))
    replica = base.__new__(base)
    memo[id(self)] = replica
    replica.__setstate__(copy.deepcopy(dict(self.__dict__), memo))
    _reinject(replica)
    return replica


def _make_serialisable(module: nn.Module) -> None:
    # The class was generated for this module alone, so patching it affects nothing else.
    cls = type(module)
    cls.__reduce_ex__ = _reduce_ex  # type: ignore[method-assign,assignment]
    cls.__deepcopy__ = _deepcopy  # type: ignore[attr-defined]
