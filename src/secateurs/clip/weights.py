"""Weight clipping: clamp parameters (not gradients) to [-c, c], as WGAN critics do.

This is a different operation from gradient clipping: it bounds the weights themselves, is
called after `optimizer.step()`, and is symmetric (never the destructive clamp to [0, t]).
"""

from __future__ import annotations

import torch

from secateurs.clip._checks import positive
from secateurs.clip._grads import Target, parameters_of
from secateurs.clip._norms import local


@torch.no_grad()
def clip_weights_(parameters: Target, c: float) -> int:
    """Clamp every parameter of `parameters` to [-c, c] in place; return how many elements
    were outside the range (this reads one number per tensor)."""
    c = positive("c", c)
    outside = 0
    for p in parameters_of(parameters):
        t = local(p.detach())
        if not t.is_floating_point():
            continue
        outside += int((t.abs() > c).sum())
        t.clamp_(-c, c)
    return outside
