"""The pipeline above the core: train -> clip -> prune -> fine-tune -> measure.

`stages` holds the steps as small objects (`Seed`, `Train`, `Prune`, `Bake`, `Measure`) that
a `Pipeline` runs in order on a `Run`; every face (demo, compare, cross-validation, the
exploding-gradient experiment) composes them. `iterative_prune_` prunes a model in place over
rounds, fine-tuning after each (Han et al. 2015).
"""

from secateurs.pipeline.iterative import IterativeResult, Round, iterative_prune_
from secateurs.pipeline.stages import Bake, Measure, Pipeline, Prune, Run, Seed, Train, in_place

__all__ = [
    "Bake",
    "IterativeResult",
    "Measure",
    "Pipeline",
    "Prune",
    "Round",
    "Run",
    "Seed",
    "Train",
    "in_place",
    "iterative_prune_",
]
