"""One vocabulary: the name of each clipping rule, the same in Python, recipes, configs and
the command line, mapped to its class.

`RULES["norm"] is ByNorm`, and `ByNorm.name == "norm"` (what `ClipStats.rule` reports). A
recipe or config names a rule and gives its one threshold; `threshold_setting` says which
constructor argument that is (`max_norm` for ByNorm, `percentile` for AutoClip, ...).
"""

from __future__ import annotations

from typing import Any

from secateurs.clip.agc import AGC
from secateurs.clip.autoclip import AutoClip
from secateurs.clip.base import Rule
from secateurs.clip.norm import ByNorm
from secateurs.clip.value import ByValue
from secateurs.clip.zclip import ZClip

RULES: dict[str, type[Rule]] = {cls.name: cls for cls in (ByValue, ByNorm, AGC, AutoClip, ZClip)}


def make_rule(name: str, threshold: float | None = None, **settings: Any) -> Rule | None:
    """The rule called `name` (None for "none"), its threshold setting set to `threshold` and
    any other constructor `settings` passed on."""
    if name == "none":
        return None
    if name not in RULES:
        raise ValueError(f"unknown clipping rule {name!r}; choose from none, {', '.join(RULES)}")
    cls = RULES[name]
    if threshold is not None:
        settings[cls.threshold_setting] = threshold
    return cls(**settings)
