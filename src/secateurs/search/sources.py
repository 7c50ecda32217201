"""Turn a sweep config's names into a model factory, a data set and an optional trainer.

- model: a zoo name ("mlp", "cnn") or "package.module:factory" (called with model_kwargs);
- data: "digits" (the training + validation part of `zoo.digits`; its test part stays
  untouched for a final check) or "package.module:function" returning (x, y) tensors or a
  torch Dataset;
- trainer: "package.module:function" called as fn(model, train_loader, fold) -> model.

A "module:function" names code that the user already has; it is imported, never unpickled.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from secateurs.search.config import SweepConfig

_ZOO = {"mlp": "secateurs.zoo.models:mlp", "cnn": "secateurs.zoo.models:rescnn"}
_IMAGE_MODELS = {"cnn"}


def import_object(spec: str, what: str) -> Any:
    """Import `module:attribute`; errors say which config field was wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what}: {spec!r} must be a known name or 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{what}: cannot import module {module_name!r} ({e})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{what}: {spec!r} is not callable")
    return obj


def _build(factory: Callable[..., Any], kwargs: dict[str, Any], spec: str) -> nn.Module:
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: {spec!r} returned {type(model).__name__}, not a torch nn.Module")
    return model


def named_code(config: SweepConfig) -> dict[str, str]:
    """The 'module:function' each config field will import and call (shown before a run)."""
    code = {"model": _ZOO.get(config.model, config.model)}
    if config.data != "digits":
        code["data"] = config.data
    if config.trainer:
        code["trainer"] = config.trainer
    return code


def model_factory(config: SweepConfig) -> Callable[[], nn.Module]:
    """A zero-argument callable that builds a fresh (untrained) model."""
    spec = _ZOO.get(config.model, config.model)
    if ":" not in spec:
        raise ValueError(
            f"model: unknown name {config.model!r}; use one of {sorted(_ZOO)} or "
            "'package.module:factory'"
        )
    factory = import_object(spec, "model")
    return functools.partial(_build, factory, dict(config.model_kwargs), spec)


def load_data(config: SweepConfig) -> Any:
    """The search data: a pair of tensors (inputs, labels) or a torch Dataset."""
    if config.data == "digits":
        from secateurs.zoo.data import digits

        kwargs: dict[str, Any] = {"image": config.model in _IMAGE_MODELS, "seed": config.seed}
        unknown = set(config.data_kwargs) - {"image", "seed", "val", "test"}
        if unknown:
            raise ValueError(f"data_kwargs: unknown keys for digits: {sorted(unknown)}")
        kwargs.update(config.data_kwargs)
        split = digits(**kwargs)
        return torch.cat([split.x_train, split.x_val]), torch.cat([split.y_train, split.y_val])
    fn = import_object(config.data, "data")
    data = fn(**config.data_kwargs)
    if isinstance(data, Dataset):
        return data
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        return tuple(data)
    raise TypeError(
        f"data: {config.data!r} must return (inputs, labels) tensors or a torch Dataset, "
        f"got {type(data).__name__}"
    )


def trainer(config: SweepConfig) -> Callable | None:
    """The user's fn(model, train_loader, fold) -> trained model, if the config names one."""
    return import_object(config.trainer, "trainer") if config.trainer else None
