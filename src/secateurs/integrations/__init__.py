"""Clipping and pruning inside the training loops people already have.

- `secateurs.integrations.lightning`: Lightning callbacks (`Clipping`, `Pruning`,
  `StructuredPruning`).
- `secateurs.integrations.transformers`: Hugging Face `TrainerCallback`s (`ClippingCallback`,
  `PruningCallback`).
- `secateurs.integrations.keras`: Keras 3 (`ClippedOptimizer` with AGC / AutoClip / ZClip,
  `PruningCallback` with TF-MOT style schedules, `strip_pruning`).

Each submodule imports its framework; this package imports none of them, so importing
`secateurs` never pulls in Lightning, Transformers or Keras. Install the extra you need:
``pip install secateurs[lightning]``, ``[transformers]`` or ``[keras]``.
"""
