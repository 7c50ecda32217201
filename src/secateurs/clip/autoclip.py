"""AutoClip (Seetharaman et al. 2020): clip to a percentile of the history of gradient norms."""

from __future__ import annotations

from typing import Any

import torch

from secateurs.clip._checks import count, percentile
from secateurs.clip._global import GlobalNormRule
from secateurs.clip.policy import Policy


class AutoClip(GlobalNormRule):
    """Clip the global norm to the `percentile`-th percentile of the norms seen so far.

    Each step appends the pre-clip global norm to a ring buffer of the last `history` norms
    (a tensor on the gradients' device: bounded memory, no host synchronisation), then clips to
    the percentile of the buffer, current norm included (linear interpolation, as numpy).
    Non-finite norms never enter the history: with a policy the step stops before it; with
    `nonfinite=None` the slot is stored as NaN and ignored by the percentile.
    """

    name = "autoclip"
    threshold_setting = "percentile"

    def __init__(
        self,
        percentile: float = 10.0,
        history: int = 10_000,
        *,
        norm_type: float | str = 2.0,
        nonfinite: Policy = "skip",
    ) -> None:
        super().__init__(norm_type, nonfinite)
        self.percentile = _check_percentile(percentile)
        self.history = count("history", history)
        self._buffer: torch.Tensor | None = None
        self._pos = 0
        self._filled = 0

    def threshold(self, total: torch.Tensor) -> torch.Tensor:
        if self._buffer is None:
            self._buffer = torch.full((self.history,), float("nan"), device=total.device)
        elif self._buffer.device != total.device:
            self._buffer = self._buffer.to(total.device)
        value = total.detach().float()
        self._buffer[self._pos] = torch.where(torch.isfinite(value), value, float("nan"))
        self._pos = (self._pos + 1) % self.history
        self._filled = min(self._filled + 1, self.history)
        return torch.nanquantile(self._buffer[: self._filled], self.percentile / 100.0)

    @property
    def norms(self) -> torch.Tensor:
        """The stored history, oldest first (NaN marks a non-finite step)."""
        if self._buffer is None:
            return torch.empty(0)
        if self._filled < self.history:
            return self._buffer[: self._filled].clone()
        return torch.cat([self._buffer[self._pos :], self._buffer[: self._pos]])

    def state_dict(self) -> dict[str, Any]:
        return {
            "percentile": self.percentile,
            "history": self.history,
            "norms": self.norms.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"norms", "history"} - set(state)
        if missing:
            raise ValueError(f"AutoClip state is missing {sorted(missing)}")
        if int(state["history"]) != self.history:
            raise ValueError(
                f"state was saved with history={state['history']}, this rule has "
                f"history={self.history}; construct AutoClip(history={state['history']})"
            )
        norms = torch.as_tensor(state["norms"], dtype=torch.float32).reshape(-1)
        if norms.numel() > self.history:
            raise ValueError(f"state holds {norms.numel()} norms, more than history={self.history}")
        device = self._buffer.device if self._buffer is not None else norms.device
        self._buffer = torch.full((self.history,), float("nan"), device=device)
        self._buffer[: norms.numel()] = norms.to(device)
        self._filled = norms.numel()
        self._pos = self._filled % self.history

    def _describe(self) -> str:
        return f"percentile={self.percentile}, history={self.history}, nonfinite={self.nonfinite!r}"


def _check_percentile(value: float) -> float:
    return percentile("percentile", value)
