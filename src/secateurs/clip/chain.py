"""Compose rules: `chain(AGC(0.01), ByNorm(1.0))` applies AGC, then the global norm clip."""

from __future__ import annotations

from typing import Any

import torch

from secateurs.clip._grads import Target
from secateurs.clip.base import Rule
from secateurs.clip.stats import ClipStats


class Chain(Rule):
    """Apply rules in order. A rule that asks to skip the step stops the chain there.

    The stats report the first rule's `norm_before`, the last rule's `norm_after`, the product
    of the factors that are known, `clipped` if any rule clipped; `parts` holds each rule's
    stats.
    """

    name = "chain"

    def __init__(self, *rules: Rule) -> None:
        super().__init__(None)
        if not rules:
            raise ValueError("chain needs at least one rule, e.g. chain(AGC(), ByNorm(1.0))")
        for r in rules:
            if not callable(r):
                raise TypeError(f"chain takes clipping rules, got {type(r).__name__}")
        self.rules = tuple(rules)

    def apply(self, parameters: Target) -> ClipStats:
        parts: list[ClipStats] = []
        for rule in self.rules:
            stats = rule(parameters)
            parts.append(stats)
            if stats.tensors()["skipped"] is True:
                break  # (a device-side skip flag is not read: the next rules keep factor 1)
        raw = [p.tensors() for p in parts]
        coefs = [r["coef"] for r in raw if r["coef"] is not None]
        coef: Any = None
        if coefs:
            coef = coefs[0]
            for c in coefs[1:]:
                coef = coef * c
        clipped: Any = False
        for r in raw:
            clipped = clipped | (
                r["clipped"] if isinstance(r["clipped"], torch.Tensor) else bool(r["clipped"])
            )
        nonfinite = next((r["nonfinite"] for r in raw if r["nonfinite"] is not None), None)
        skipped: Any = False
        for r in raw:
            skipped = skipped | r["skipped"]
        return ClipStats(
            self.name,
            norm_before=raw[0]["norm_before"],
            norm_after=raw[-1]["norm_after"],
            coef=coef,
            nonfinite=nonfinite,
            skipped=skipped,
            clipped=clipped,
            parts=parts,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            str(i): r.state_dict() for i, r in enumerate(self.rules) if hasattr(r, "state_dict")
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, r in enumerate(self.rules):
            if str(i) in state and hasattr(r, "load_state_dict"):
                r.load_state_dict(state[str(i)])

    def _describe(self) -> str:
        return ", ".join(repr(r) for r in self.rules)


def chain(*rules: Rule) -> Chain:
    """Compose clipping rules, applied left to right."""
    return Chain(*rules)
