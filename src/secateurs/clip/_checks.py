"""Argument checks shared by the clipping rules: errors name the argument and say what to pass."""

from __future__ import annotations

import math


def positive(name: str, value: float) -> float:
    """Return `value` as a float; raise ValueError unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def norm_type(value: float | str) -> float:
    """Return the p of a p-norm as a float (`inf` allowed); raise ValueError for p <= 0 or NaN."""
    if isinstance(value, str):
        if value.lower() not in ("inf", "infinity"):
            raise ValueError(f"norm_type must be a number > 0 or 'inf', got {value!r}")
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"norm_type must be a number or 'inf', got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or value <= 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {value}")
    return value


def percentile(name: str, value: float) -> float:
    """Return `value` as a float; raise ValueError unless 0 < value <= 100."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number in (0, 100], got {type(value).__name__}")
    value = float(value)
    if not 0 < value <= 100:  # also rejects NaN
        raise ValueError(f"{name} must be in (0, 100], got {value}")
    return value


def fraction(name: str, value: float) -> float:
    """Return `value` as a float; raise ValueError unless 0 < value < 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number in (0, 1), got {type(value).__name__}")
    value = float(value)
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return value


def count(name: str, value: int, minimum: int = 1) -> int:
    """Return `value`; raise unless it is an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value
