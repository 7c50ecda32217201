"""The pipeline above the core: train -> clip -> prune -> fine-tune -> measure.

`iterative_prune_` prunes a model in place over rounds, fine-tuning after each
(Han et al. 2015).
"""

from secateurs.pipeline.iterative import IterativeResult, Round, iterative_prune_

__all__ = ["IterativeResult", "Round", "iterative_prune_"]
