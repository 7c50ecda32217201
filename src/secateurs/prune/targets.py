"""Which parameters are prunable.

By default: the weights of Linear, Hugging Face's Conv1D, Conv1d/2d/3d, ConvTranspose1d/2d/3d,
Embedding, RNN/LSTM/GRU (every ``weight_ih_l*``, ``weight_hh_l*``, ``weight_hr_l*``, reverse
included) and MultiheadAttention (``in_proj_weight`` or ``q/k/v_proj_weight``; ``out_proj``
is a Linear).
Biases and normalisation layers are never pruned. The final classifier (the last Linear
registered in the model) and embeddings stay dense unless `exclude` is given (``exclude=[]``
prunes everything chosen). `include` selects by module type or by name pattern; a pattern also
reaches any named parameter of a custom module. Tied (shared) parameters appear once.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.utils import parametrize

from secateurs._conv1d import is_conv1d
from secateurs.prune.mask import original

_CONVS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_STANDARD = (nn.Linear, *_CONVS, nn.Embedding, nn.EmbeddingBag, nn.RNNBase, nn.MultiheadAttention)
_NORMS = (_NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm)
_RNN_WEIGHT = re.compile(r"^weight_(ih|hh|hr)_l\d+(_reverse)?$")
_MHA_WEIGHT = frozenset({"in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"})


class _Default:
    """Marker for the default exclusion (final classifier and embeddings)."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()

Selector = str | type


@dataclass
class Target:
    """One prunable tensor: `module.<attr>`, plus the other modules that share it (tied)."""

    name: str  # full name, e.g. "net.1.weight"
    module_name: str
    module: nn.Module
    attr: str
    shared: list[tuple[str, nn.Module, str]] = field(default_factory=list)

    @property
    def weight(self) -> torch.Tensor:
        """The effective (masked) value."""
        return getattr(self.module, self.attr)

    @property
    def param(self) -> torch.Tensor:
        """The stored Parameter that the optimizer updates (and that receives gradients)."""
        return original(self.module, self.attr)

    @property
    def shape(self) -> torch.Size:
        return self.param.shape

    def numel(self) -> int:
        return self.param.numel()


def _tensor_names(module: nn.Module) -> list[str]:
    """Names of the tensors directly held by `module`, parametrized ones included."""
    names = [n for n, _ in module.named_parameters(recurse=False)]
    if parametrize.is_parametrized(module):
        names += list(module.parametrizations.keys())
    return names


def _standard_weights(module: nn.Module) -> list[str]:
    names = _tensor_names(module)
    if isinstance(module, nn.RNNBase):
        return [n for n in names if _RNN_WEIGHT.match(n)]
    if isinstance(module, nn.MultiheadAttention):
        return [n for n in names if n in _MHA_WEIGHT]
    if isinstance(module, _STANDARD) or is_conv1d(module):
        return [n for n in names if n == "weight"]
    return []


def _never(module: nn.Module, attr: str) -> bool:
    return isinstance(module, _NORMS) or attr == "bias" or attr.startswith("bias_")


def _matches(selector: Selector, module: nn.Module, module_name: str, full: str) -> bool:
    if isinstance(selector, type):
        return isinstance(module, selector)
    return fnmatch.fnmatchcase(full, selector) or fnmatch.fnmatchcase(module_name, selector)


def _check_selectors(value: Sequence[Selector] | None, what: str) -> list[Selector]:
    if value is None:
        return []
    if isinstance(value, str | type):
        value = [value]
    out = list(value)
    for s in out:
        if not isinstance(s, str | type):
            raise TypeError(f"{what} entries must be module types or name patterns, got {s!r}")
    return out


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    out = []
    for mod_name, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList) or ".parametrizations" in (
            "." + mod_name
        ):
            continue
        for attr in _tensor_names(module):
            out.append((mod_name, module, attr))
    return out


def kept_dense(
    model: nn.Module,
    targets: Sequence[Target],
    exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
) -> dict[str, str]:
    """The standard layer weights of `model` that `targets` leaves dense, each with why."""
    chosen = {id(t.param) for t in targets}
    default = isinstance(exclude, _Default)
    dense_ids = _default_exclusions(model) if default else set()
    exc = [] if default else _check_selectors(exclude, "exclude")  # type: ignore[arg-type]
    out: dict[str, str] = {}
    for mod_name, module, attr in _candidates(model):
        if attr not in _standard_weights(module) or id(original(module, attr)) in chosen:
            continue
        full = f"{mod_name}.{attr}" if mod_name else attr
        hits = [s for s in exc if _matches(s, module, mod_name, full)]
        if id(module) in dense_ids:
            what = (
                "an embedding"
                if isinstance(module, nn.Embedding | nn.EmbeddingBag)
                else ("the last Linear (the outputs)")
            )
            out[full] = f"{what}, kept dense by default (--all or exclude=[] prunes it)"
        elif hits:
            out[full] = f"matches exclude {getattr(hits[0], '__name__', hits[0])!r}"
        else:
            out[full] = "not matched by include"
    return out


def _default_exclusions(model: nn.Module) -> set[int]:
    """ids of modules kept dense by default: the last Linear and every embedding."""
    out = set()
    last_linear = None
    for mod_name, module in model.named_modules():
        if ".parametrizations" in "." + mod_name:
            continue
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            out.add(id(module))
        if type(module) is nn.Linear or (
            isinstance(module, nn.Linear)
            and not isinstance(module, nn.modules.linear.NonDynamicallyQuantizableLinear)
        ):
            last_linear = module
    if last_linear is not None:
        out.add(id(last_linear))
    return out


def check_has_values(model: nn.Module) -> None:
    """A clear ValueError when `model` is not a module or has parameters on the meta device
    (shapes without values), instead of a failure deep inside pruning."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, p in model.named_parameters():
        if p.device.type == "meta":
            raise ValueError(
                f"parameter {name!r} is on the meta device (a shape without values): load or "
                "initialise the weights first, e.g. model.to_empty(device='cpu') and "
                "load_state_dict"
            )


def find_targets(
    model: nn.Module,
    *,
    include: Sequence[Selector] | Selector | None = None,
    exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
) -> list[Target]:
    """The prunable tensors of `model`, in registration order, each distinct tensor once.

    `include` / `exclude` entries are module types (``nn.Conv2d``) or glob patterns matched
    against the parameter name (``"encoder.*.weight"``) or the module name (``"net.1"``).
    A pattern that matches nothing is a ValueError (it is almost always a typo).
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "a TorchScript module's layers are compiled, so they cannot take pruning masks; "
            "prune the original nn.Module (its class with the state dict) instead"
        )
    check_has_values(model)
    inc = _check_selectors(include, "include") if include is not None else None
    default_exclude = isinstance(exclude, _Default)
    exc = [] if default_exclude else _check_selectors(exclude, "exclude")  # type: ignore[arg-type]
    dense_ids = _default_exclusions(model) if default_exclude else set()

    used_inc: set[int] = set()
    used_exc: set[int] = set()
    targets: list[Target] = []
    candidates = _candidates(model)
    holders: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for mod_name, module, attr in candidates:
        holders.setdefault(id(original(module, attr)), []).append((mod_name, module, attr))
    done: set[int] = set()
    for mod_name, module, attr in candidates:
        full = f"{mod_name}.{attr}" if mod_name else attr
        if inc is None:
            chosen = attr in _standard_weights(module)
        else:
            hits = [i for i, s in enumerate(inc) if _matches(s, module, mod_name, full)]
            if isinstance(module, _STANDARD):
                # A type or a module-name pattern on a standard layer means its weights.
                hits = [
                    i
                    for i in hits
                    if attr in _standard_weights(module)
                    or (isinstance(inc[i], str) and fnmatch.fnmatchcase(full, inc[i]))
                ]
            chosen = bool(hits) and not _never(module, attr)
            if chosen:
                used_inc.update(hits)
        if not chosen or _never(module, attr):
            continue
        if not torch.is_floating_point(original(module, attr)):
            continue
        ex_hits = [i for i, s in enumerate(exc) if _matches(s, module, mod_name, full)]
        used_exc.update(ex_hits)
        if ex_hits or id(module) in dense_ids:
            continue
        key = id(original(module, attr))
        if key in done:
            continue
        done.add(key)
        # Every other module holding the same Parameter gets the same mask (tied weights).
        shared = [(n, m, a) for n, m, a in holders[key] if m is not module or a != attr]
        targets.append(
            Target(name=full, module_name=mod_name, module=module, attr=attr, shared=shared)
        )

    if inc is not None:
        unused = [inc[i] for i in range(len(inc)) if i not in used_inc]
        if unused:
            raise ValueError(f"include patterns matched no prunable parameter: {_show(unused)}")
    unused_exc = [exc[i] for i in range(len(exc)) if i not in used_exc]
    if unused_exc:
        raise ValueError(f"exclude patterns matched no prunable parameter: {_show(unused_exc)}")
    return targets


def _show(selectors: list[Selector]) -> str:
    return ", ".join(s.__name__ if isinstance(s, type) else repr(s) for s in selectors)
