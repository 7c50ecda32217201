"""What one call of a clipping rule did.

Values stay tensors (on the gradients' device) until read, so a training loop on a GPU does
not wait for the device unless it looks at them: reading an attribute converts it to a Python
number; `tensors()` gives the raw values for logging without a synchronisation.
"""

from __future__ import annotations

from typing import Any

import torch

Value = torch.Tensor | float | int | bool | None

_FIELDS = ("norm_before", "norm_after", "coef", "nonfinite", "skipped", "clipped")


def _read(value: Value) -> float | int | bool | None:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            return bool(value)
        if value.is_floating_point():
            return float(value)
        return int(value)
    return value


class ClipStats:
    """Statistics of one clipping step.

    - `norm_before`: the gradients' total norm before the rule (None where the rule does not
      compute it, e.g. ByValue without a non-finite check);
    - `norm_after`: the total norm after it (computed from the norms, not from another pass);
    - `coef`: the factor applied (global rules), or the smallest factor applied (per-unit rules);
    - `nonfinite`: how many gradient tensors held NaN or inf (None where not checked);
    - `skipped`: True when the non-finite policy "skip" asks the caller not to step (a tensor
      on the device where the rule decided there, so that nobody waits for it:
      `secateurs.clip.step_unless` steps or not without reading it);
    - `clipped`: True when the rule changed any gradient (False where nothing was measured:
      ByValue without a non-finite check).
    """

    __slots__ = ("_values", "extra", "parts", "rule")

    def __init__(
        self,
        rule: str,
        *,
        norm_before: Value = None,
        norm_after: Value = None,
        coef: Value = None,
        nonfinite: Value = None,
        skipped: Value = False,
        clipped: Value = None,
        extra: dict[str, Value] | None = None,
        parts: list[ClipStats] | None = None,
    ) -> None:
        self.rule = rule
        self._values: dict[str, Value] = {
            "norm_before": norm_before,
            "norm_after": norm_after,
            "coef": coef,
            "nonfinite": nonfinite,
            "skipped": skipped,
            "clipped": False if clipped is None else clipped,
        }
        self.extra = dict(extra or {})
        self.parts = list(parts or [])

    @classmethod
    def skipped_step(cls, rule: str, norm: Value, nonfinite: Value, coef: Value = 1.0) -> ClipStats:
        """The stats of a step the "skip" policy refused: gradients left as they were."""
        return cls(
            rule,
            norm_before=norm,
            norm_after=norm,
            coef=coef,
            nonfinite=nonfinite,
            skipped=True,
            clipped=False,
        )

    @property
    def norm_before(self) -> float | None:
        return _read(self._values["norm_before"])  # type: ignore[return-value]

    @property
    def norm_after(self) -> float | None:
        return _read(self._values["norm_after"])  # type: ignore[return-value]

    @property
    def coef(self) -> float | None:
        return _read(self._values["coef"])  # type: ignore[return-value]

    @property
    def nonfinite(self) -> int | None:
        v = _read(self._values["nonfinite"])
        return None if v is None else int(v)

    @property
    def skipped(self) -> bool:
        return bool(_read(self._values["skipped"]))

    @property
    def clipped(self) -> bool:
        return bool(_read(self._values["clipped"]))

    def tensors(self) -> dict[str, Value]:
        """The raw values (tensors where the rule produced tensors); reading them is up to you."""
        return dict(self._values)

    def as_dict(self) -> dict[str, Any]:
        """All statistics as Python numbers (this reads the tensors)."""
        out: dict[str, Any] = {"rule": self.rule}
        for name in _FIELDS:
            out[name] = getattr(self, name)
        for name, value in self.extra.items():
            out[name] = _read(value)
        return out

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if k != "rule")
        return f"ClipStats({self.rule}: {body})"
