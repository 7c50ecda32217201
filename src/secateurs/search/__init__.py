"""Choosing thresholds by validation: sensitivity scans, cross-validation, studies.

- `sensitivity_scan(model, val_data, sparsities=...)`: prune one layer at a time; the
  result's `.suggest(target=..., tolerance=...)` gives per-layer sparsities.
- `cross_validate(make_model, data, candidate, k=5, finetune_steps=0)`: mean +- std of the
  metric across (stratified) folds for one pruning/clipping setting.
- `suggest_clip_thresholds(model, data, steps)`: clipping thresholds from gradient norms.
- `run_sweep(config, storage_url, study_name, workers=N)`: a persistent, resumable Optuna
  search (grid, TPE, NSGA-II) stored in SQLite or PostgreSQL; `load_config` reads its YAML.
- Recipes: `load_recipe` / `apply_recipe` / `save_recipe` (what `secateurs prune recipe`
  applies).
"""

from secateurs.search.clip_range import ClipSuggestion, suggest_clip_thresholds
from secateurs.search.config import SweepConfig, load_config, parse_config
from secateurs.search.crossval import CVResult, FoldResult, cross_validate
from secateurs.search.folds import Fold, holdout, kfold, make_folds
from secateurs.search.recipe import (
    ClipSetting,
    PruneSetting,
    Recipe,
    apply_recipe,
    load_recipe,
    make_clip_rule,
    save_recipe,
)
from secateurs.search.sensitivity import SensitivityResult, sensitivity_scan
from secateurs.search.storage import StorageError, open_storage
from secateurs.search.study import StudyMismatchError, prepare_study, run_sweep

__all__ = [
    "CVResult",
    "ClipSetting",
    "ClipSuggestion",
    "Fold",
    "FoldResult",
    "PruneSetting",
    "Recipe",
    "SensitivityResult",
    "StorageError",
    "StudyMismatchError",
    "SweepConfig",
    "apply_recipe",
    "cross_validate",
    "holdout",
    "kfold",
    "load_config",
    "load_recipe",
    "make_clip_rule",
    "make_folds",
    "open_storage",
    "parse_config",
    "prepare_study",
    "run_sweep",
    "save_recipe",
    "sensitivity_scan",
    "suggest_clip_thresholds",
]
