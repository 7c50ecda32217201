"""Sweep YAML: validated, errors name the field; the space expands to the right grid."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_helpers import tiny

from secateurs.search.config import load_config, parse_config
from secateurs.search.space import grid_points, to_recipe

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sweep-digits.yaml"


def test_example_config_is_valid_and_expands_to_its_grid():
    cfg = load_config(EXAMPLE)
    assert cfg.evaluation.kind == "kfold" and cfg.evaluation.k == 5
    points = grid_points(cfg.space)
    assert [p["sparsity"] for p in points] == pytest.approx(
        [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    )


@pytest.mark.parametrize("path", sorted(EXAMPLE.parent.glob("sweep-*.yaml")), ids=lambda p: p.name)
def test_every_example_config_is_valid(path):
    assert load_config(path).study == path.stem


def test_grid_holds_only_applicable_parameters():
    cfg = parse_config(
        tiny(
            space={
                "prune": {"method": ["none", "unstructured"], "sparsity": [0.5, 0.8]},
                "clip": {"rule": ["none", "norm"], "threshold": [1.0, 5.0]},
            }
        )
    )
    points = grid_points(cfg.space)
    # (dense + 2 sparsities) x (no clip + 2 norm thresholds), without duplicates
    assert len(points) == 9
    assert {"method": "none", "clip_rule": "none"} in points
    assert all("clip_threshold" not in p for p in points if p["clip_rule"] == "none")
    recipe = to_recipe(points[-1])
    assert recipe.prune.sparsity == 0.8 and recipe.clip.rule == "norm"
    assert recipe.clip.threshold == 5.0


def test_config_hash_ignores_n_trials_and_name_but_not_the_space():
    a = parse_config(tiny(n_trials=3, study="a"))
    b = parse_config(tiny(n_trials=7, study="b"))
    c = parse_config(tiny(space={"prune": {"sparsity": [0.3, 0.6]}}))
    assert a.config_hash() == b.config_hash() != c.config_hash()


def test_malformed_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model: mlp\nspace:\n  prune: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"malformed YAML at line \d+"):
        load_config(p)


def test_yaml_is_read_with_the_safe_loader(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("model: !!python/object/apply:os.system ['echo hi']\n", encoding="utf-8")
    with pytest.raises(ValueError, match="malformed YAML"):
        load_config(p)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (tiny(modle="mlp"), r"modle: unknown key"),
        (tiny(budget={"train_step": 5}), r"budget\.train_step: unknown key"),
        (tiny(space={"prune": {"sparsity": [0.5], "sparsty": 1}}), r"space\.prune\.sparsty"),
        (tiny(space={"prune": {"sparsity": [1.5]}}), r"sparsity: 1\.5 is outside \[0\.0, 1\.0\)"),
        (
            tiny(space={"prune": {"sparsity": {"low": 0.9, "high": 0.5, "step": 0.1}}}),
            r"low \(0\.9\) must not exceed high \(0\.5\)",
        ),
        (
            tiny(space={"prune": {"sparsity": {"low": 0.1, "high": 0.5, "step": 0}}}),
            r"space\.prune\.sparsity\.step",
        ),
        (
            tiny(space={"prune": {"sparsity": {"low": 0.1, "high": 0.5}}}),
            r"grid sampler needs a list of values or a step",
        ),
        (tiny(space={"prune": {"sparsity": []}}), r"list of values is empty"),
        (tiny(space={"prune": {"sparsity": ["a"]}}), r"must hold numbers"),
        (tiny(space={"prune": {"method": ["unstructured"]}}), r"exactly one of sparsity"),
        (tiny(space={"prune": {"method": ["structured"]}}), r"needs a ratio"),
        (tiny(space={"prune": {"method": ["nm"], "nm": ["4:2"]}}), r"needs 0 < n < m"),
        (
            tiny(space={"prune": {"sparsity": [0.5]}, "clip": {"rule": ["norm"]}}),
            r"needs a threshold",
        ),
        (
            tiny(
                space={
                    "prune": {"sparsity": [0.5]},
                    "clip": {"rule": ["agc"], "threshold": "suggest"},
                }
            ),
            r"rules norm/value",
        ),
        (tiny(evaluation={"kind": "kfold", "k": 1}), r"evaluation\.k"),
        (tiny(sampler="random"), r"sampler"),
        (
            tiny(space={"prune": {"sparsity": [0.5], "schedule": ["cubic"]}}),
            r"finetune_steps > 0",
        ),
        (tiny(n_trials=0), r"n_trials"),
    ],
)
def test_bad_configs_name_the_field(cfg, match):
    with pytest.raises(ValueError, match=match):
        parse_config(cfg, "sweep.yaml")


def test_top_level_must_be_a_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="top level must be a mapping"):
        load_config(p)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config("/nonexistent/sweep.yaml")
