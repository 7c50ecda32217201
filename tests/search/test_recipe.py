"""Recipes: saved and loaded as YAML, validated, applied."""

from __future__ import annotations

import pytest
import torch

from secateurs import clip
from secateurs.measure import count_nonzeros
from secateurs.search.recipe import (
    ClipSetting,
    PruneSetting,
    Recipe,
    apply_recipe,
    load_recipe,
    make_clip_rule,
    save_recipe,
)
from secateurs.zoo import MLP


def test_round_trip_and_apply(tmp_path):
    r = Recipe(prune=PruneSetting(sparsity=0.75, scope="layer"), source={"trial": 3})
    path = save_recipe(r, tmp_path / "r.yaml")
    assert load_recipe(path) == r
    torch.manual_seed(0)
    model = MLP((64, 32, 10))
    out, report = apply_recipe(model, load_recipe(path))
    assert out is model
    w = model.net[1].weight
    assert int((w == 0).sum()) == round(0.75 * w.numel())
    assert report.layers[0].requested == 0.75


def test_nm_and_dense_recipes():
    torch.manual_seed(0)
    model = MLP((64, 32, 10))
    n0 = count_nonzeros(model)
    assert apply_recipe(model, Recipe())[1] is None and count_nonzeros(model) == n0
    apply_recipe(model, Recipe(prune=PruneSetting(method="nm", n=2, m=4)))
    groups = model.net[1].weight.detach().reshape(-1, 4)
    assert bool(((groups != 0).sum(1) <= 2).all())


def test_bad_recipes_name_the_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("prune:\n  method: unstructured\n  sparsty: 0.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"prune\.sparsty"):
        load_recipe(p)
    p.write_text("prune:\n  method: unstructured\n  sparsity: 1.2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"prune\.sparsity"):
        load_recipe(p)
    p.write_text("prune: [1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="malformed YAML"):
        load_recipe(p)
    with pytest.raises(FileNotFoundError):
        load_recipe(tmp_path / "missing.yaml")


def test_clip_rules_are_built_from_settings():
    assert make_clip_rule(ClipSetting()) is None
    assert isinstance(make_clip_rule(ClipSetting(rule="norm", threshold=2.0)), clip.ByNorm)
    assert isinstance(make_clip_rule(ClipSetting(rule="value", threshold=0.1)), clip.ByValue)
    assert isinstance(make_clip_rule(ClipSetting(rule="agc", threshold=0.01)), clip.AGC)
    assert isinstance(make_clip_rule(ClipSetting(rule="autoclip", threshold=10)), clip.AutoClip)
    assert isinstance(make_clip_rule(ClipSetting(rule="zclip", threshold=2.5)), clip.ZClip)
    with pytest.raises(ValueError, match="needs a threshold"):
        ClipSetting(rule="norm")
