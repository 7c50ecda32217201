"""Gradient clipping rules and weight clipping.

`RULES` maps each rule's name ("value", "norm", "agc", "autoclip", "zclip": the names recipes,
configs and the command line use) to its class; `make_rule(name, threshold)` builds one.

A rule is called once per optimizer step, after backward (and `GradScaler.unscale_`) and
before `optimizer.step()`, as `rule(model_or_parameters)`; it clips in place and returns a
`ClipStats`::

    rule = ByNorm(1.0)                # or ByValue(0.5), AGC(0.01), AutoClip(10), ZClip()
    loss.backward()
    stats = rule(model)               # stats.norm_before, .coef, .clipped, .skipped, ...
    optimizer.step()

`wrap(optimizer, rule)` does the call inside `step()` and skips steps with non-finite
gradients; `chain(*rules)` composes; `Scheduled(rule, max_norm=fn)` makes a setting follow
a schedule (rules read their settings at call time); `ClipMonitor` summarises;
`GradNormRecorder` records the norm distribution to choose thresholds from
(`secateurs.train.record_norms` runs it);
`clip_weights_` clamps weights (WGAN critics).
"""

from secateurs.clip.agc import AGC, final_classifier, unit_norms
from secateurs.clip.autoclip import AutoClip
from secateurs.clip.base import Rule
from secateurs.clip.chain import Chain, chain
from secateurs.clip.functional import agc, clip_grad_norm, clip_grad_value
from secateurs.clip.norm import ByNorm
from secateurs.clip.optim import ClippedOptimizer, wrap
from secateurs.clip.policy import POLICIES, Policy
from secateurs.clip.recorder import ClipSuggestion, GradNormRecorder, NormRecord
from secateurs.clip.schedule import Scheduled
from secateurs.clip.skip import step_unless
from secateurs.clip.stats import ClipStats
from secateurs.clip.telemetry import ClipMonitor
from secateurs.clip.value import ByValue
from secateurs.clip.vocabulary import RULES, make_rule
from secateurs.clip.weights import clip_weights_
from secateurs.clip.zclip import ZClip

__all__ = [
    "AGC",
    "POLICIES",
    "RULES",
    "AutoClip",
    "ByNorm",
    "ByValue",
    "Chain",
    "ClipMonitor",
    "ClipStats",
    "ClipSuggestion",
    "ClippedOptimizer",
    "GradNormRecorder",
    "NormRecord",
    "Policy",
    "Rule",
    "Scheduled",
    "ZClip",
    "agc",
    "chain",
    "clip_grad_norm",
    "clip_grad_value",
    "clip_weights_",
    "final_classifier",
    "make_rule",
    "step_unless",
    "unit_norms",
    "wrap",
]
