"""Parse JSON and YAML from untrusted files with bounded nesting and alias expansion.

Python's parsers recurse once per nesting level (a deep document ends in RecursionError, or
worse in a crash) and YAML aliases let a few hundred bytes stand for billions of nodes once
the data is walked ("billion laughs"). These readers refuse such documents up front with a
ValueError that says which limit was hit.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import yaml

MAX_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of brackets in a JSON text (strings ignored)."""
    data = text.encode() if isinstance(text, str) else text
    skeleton = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    steps = np.zeros(skeleton.shape, dtype=np.int64)
    steps[(skeleton == ord("[")) | (skeleton == ord("{"))] = 1
    steps[(skeleton == ord("]")) | (skeleton == ord("}"))] = -1
    return int(np.cumsum(steps).max()) if steps.size else 0


def loads_json(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` that refuses documents nested deeper than `max_depth` (ValueError)."""
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"JSON nested {depth} levels deep (at most {max_depth} allowed)")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"not valid JSON: {e}") from None


MAX_NODES = 200_000


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int = 0) -> int:
    """Nodes the document holds once aliases are expanded (shared nodes counted per use)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"YAML nested more than {MAX_DEPTH} levels deep (aliases expanded)")
    key = id(node)
    if key in memo:
        if memo[key] < 0:
            raise ValueError("YAML alias refers to the node that contains it (a cycle)")
        return memo[key]
    memo[key] = -1
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(v, memo, depth + 1) for v in node.value)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
    memo[key] = size
    return size


def safe_load_yaml(text: str, max_nodes: int = MAX_NODES) -> Any:
    """`yaml.safe_load` for untrusted text: ValueError when the document, with its aliases
    expanded, has more than `max_nodes` nodes or more than MAX_DEPTH levels (billion laughs,
    deep nesting), or a cycle. YAML syntax errors stay `yaml.YAMLError`."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ValueError(f"YAML nested more than {MAX_DEPTH} levels deep") from None
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > max_nodes:
            raise ValueError(
                f"YAML document expands to {size:,} nodes through its aliases (at most "
                f"{max_nodes:,}); refused"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()
