"""Fixtures of the search tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a config dict as YAML and return its path."""

    def write(cfg: dict[str, Any], name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        return path

    return write
