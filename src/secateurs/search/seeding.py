"""Seeds that depend on what a trial is, never on what the process did before.

A sweep may be resumed after a kill, or spread over workers that each train some folds'
dense models and load the others from a cache. Everything random in a trial (pruning with a
random criterion, dropout, the fine-tuning shuffle) is therefore seeded from (study seed,
fold, trial setting) just before it is used, so every process gets the same figures.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import numpy as np
import torch


def trial_seed(study_seed: int, fold: int, params: Any) -> int:
    """A 63-bit seed from the study seed, the fold index and the trial's parameters (any
    JSON-able value or pydantic model): equal inputs, equal seed, in every process."""
    if hasattr(params, "model_dump"):
        params = params.model_dump(mode="json")
    text = json.dumps([study_seed, fold, params], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def seed_everything(seed: int, *generators: torch.Generator | None) -> None:
    """Seed torch, NumPy and Python's global generators and each given generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    for g in generators:
        if g is not None:
            g.manual_seed(seed)
