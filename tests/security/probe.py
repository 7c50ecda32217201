"""Hostile and corrupted secateurs files, generated on the spot (nothing stored).

Used by the tests in this folder and runnable on its own to print the figures:

    PYTHONPATH=src python tests/security/probe.py            # hostile headers + fuzz
    PYTHONPATH=src python tests/security/probe.py --fuzz 600 --seed 1

A *hostile* file names code in its header (a factory, a Hugging Face class, a layer type, an
attribute) that would leave a marker file behind if it ever ran. A *corrupted* file is a good
file truncated, bit-flipped, or edited by someone who also recomputed every checksum
(inflated shapes, bad sparse indices, deep JSON, bad dtypes).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from secateurs import io, prune
from secateurs.io.model_file import DIGEST_KEY, HEADER_KEY, _crc

# ----------------------------------------------------------------------------- file surgery


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The stored tensors and the parsed header of a secateurs file."""
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        header = json.loads(f.metadata()[HEADER_KEY])
    return tensors, header


def write(
    path: Path,
    tensors: dict[str, torch.Tensor],
    header: dict[str, Any] | str,
    *,
    fix_crcs: bool = True,
) -> Path:
    """Write a file as an attacker would: every CRC and the header digest recomputed."""
    entries = header.get("tensors") if isinstance(header, dict) else None
    if fix_crcs and isinstance(entries, dict):
        for name, entry in entries.items():
            parts = entry.get("parts") if isinstance(entry, dict) else None
            for part in parts if isinstance(parts, dict) else {}:
                key = f"{name}::{part}"
                if key in tensors:
                    parts[part] = _crc(tensors[key])
    text = header if isinstance(header, str) else json.dumps(header)
    digest = hashlib.sha256(text.encode()).hexdigest()
    save_file(tensors, str(path), metadata={HEADER_KEY: text, DIGEST_KEY: digest})
    return path


# ----------------------------------------------------------------------------- good files


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)
    )


def good_files(folder: Path) -> dict[str, Path]:
    """One small file per storage kind: dense, bitmask, CSR, and a structurally pruned model."""
    torch.manual_seed(0)
    out = {}
    dense = _net()
    out["dense"] = io.save(dense, folder / "dense.safetensors", packing="dense")
    masked = _net()
    prune.unstructured_(masked, sparsity=0.7, exclude=[])
    out["bitmask"] = io.save(masked, folder / "bitmask.safetensors", packing="bitmask")
    sparse = _net()
    prune.unstructured_(sparse, sparsity=0.97, exclude=[])
    out["csr"] = io.save(sparse, folder / "csr.safetensors", packing="csr")
    small, _ = prune.structured(_net(), torch.randn(2, 8), ratio=0.5)
    out["structured"] = io.save(small, folder / "structured.safetensors")
    return out


# ----------------------------------------------------------------------------- hostile headers


def _pickle_bomb(marker: Path) -> bytes:
    class Touch:
        def __reduce__(self):
            return (Path.touch, (marker,))

    return pickle.dumps(Touch())


def hostile_payloads(folder: Path, marker: Path) -> dict[str, Callable[[dict], None]]:
    """name -> a function that rewrites a header's architecture to run code if obeyed.

    Also writes the side files the payloads point at (a pickle, a .npy with a pickle, a
    module beside the model file)."""
    (folder / "evil.pkl").write_bytes(_pickle_bomb(marker))
    np_bomb = folder / "evil.npy"
    with open(np_bomb, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|O", "fortran_order": False, "shape": (1,)}
        )
        f.write(_pickle_bomb(marker))
    (folder / "evil_beside.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "def build(**kw):\n    return None\n"
        "class Layer:\n    pass\n"
    )
    touch = f"touch {marker}"

    def factory(path: str, kwargs: dict) -> Callable[[dict], None]:
        def edit(arch: dict) -> None:
            arch["modules"][""]["type"] = path  # not a torch.nn root: the factory decides
            arch["factory"] = path
            arch["kwargs"] = kwargs

        return edit

    def hf(cls: str, **config: Any) -> Callable[[dict], None]:
        def edit(arch: dict) -> None:
            arch["modules"][""]["type"] = cls
            arch.pop("factory", None)
            arch["hf"] = {"class": cls, "config": {"model_type": "bert", **config}}

        return edit

    def leaf(path: str) -> Callable[[dict], None]:
        def edit(arch: dict) -> None:
            arch["modules"]["0"]["type"] = path

        return edit

    def attr(key: str, value: Any) -> Callable[[dict], None]:
        def edit(arch: dict) -> None:
            arch["modules"]["0"].setdefault("attrs", {})[key] = value

        return edit

    return {
        "torch:os.popen": factory("torch:os.popen", {"cmd": touch}),
        "os:system": factory("os:system", {"command": touch}),
        "cpp_extension:subprocess.run": factory(
            "torch.utils.cpp_extension:subprocess.run", {"args": ["touch", str(marker)]}
        ),
        "sympy:sympify": factory("sympy:sympify", {"a": f"__import__('os').system('{touch}')"}),
        "fx:_forward_from_src": factory(
            "torch.fx.graph_module:_forward_from_src",
            {"src": f"import os\nos.system('{touch}')\n", "globals": {}},
        ),
        "torch:load weights_only=false": factory(
            "torch:load", {"f": str(folder / "evil.pkl"), "weights_only": False}
        ),
        "numpy:load allow_pickle": factory(
            "numpy:load", {"file": str(np_bomb), "allow_pickle": True}
        ),
        "builtins:exec": factory("builtins:exec", {"source": f"import os; os.system('{touch}')"}),
        "module beside the file": factory("evil_beside:build", {}),
        "hf class os:system": hf("os:system"),
        "hf class beside the file": hf("evil_beside:build"),
        "hf pipeline": hf("transformers:pipeline", task="fill-mask"),
        "hf remote code auto_map": hf(
            "transformers.models.bert.modeling_bert:BertModel",
            auto_map={"AutoModel": "evil_beside.Layer"},
        ),
        "leaf type beside the file": leaf("evil_beside:Layer"),
        "leaf type os:system": leaf("os:system"),
        "attr forward": attr("forward", "os.system"),
        "attr __class__": attr("__class__", "evil_beside.Layer"),
        "dtype name": lambda arch: arch.update(dtype="float32; __import__('os')"),
    }


def hostile_files(folder: Path, marker: Path) -> Iterator[tuple[str, Path]]:
    """(payload name, file) for every payload, built from a good dense file."""
    base = io.save(_net(), folder / "base.safetensors")
    tensors, header = read(base)
    for name, edit in hostile_payloads(folder, marker).items():
        h = json.loads(json.dumps(header))
        edit(h["arch"])
        slug = "".join(c if c.isalnum() else "_" for c in name)
        yield name, write(folder / f"hostile_{slug}.safetensors", tensors, h)


# ----------------------------------------------------------------------------- corrupted files


def _edit_header(path: Path, out: Path, edit: Callable[[dict], None]) -> Path:
    tensors, header = read(path)
    edit(header)
    return write(out, tensors, header)


def _edit_part(path: Path, out: Path, key_end: str, edit: Callable[[torch.Tensor], Any]) -> Path:
    tensors, header = read(path)
    keys = [k for k in tensors if k.endswith(key_end)]
    if not keys:
        raise LookupError(key_end)
    tensors[keys[0]] = edit(tensors[keys[0]].clone())
    return write(out, tensors, header)


def _first(header: dict, packing: str | None = None) -> dict:
    for entry in header["tensors"].values():
        if packing is None or entry["packing"] == packing:
            return entry
    return next(iter(header["tensors"].values()))


def _deep(depth: int) -> str:
    return '{"format": "secateurs.model/1", "x": ' + "[" * depth + "]" * depth + "}"


def header_edits() -> list[tuple[str, Callable[[dict], None]]]:
    """Edits an attacker makes to a header (checksums recomputed afterwards)."""

    def shape(factor: int) -> Callable[[dict], None]:
        return lambda h: _first(h)["shape"].__setitem__(0, _first(h)["shape"][0] * factor)

    def consistent_inflation(h: dict) -> None:
        # architecture and tensor agree on a 10^9-wide layer: only the size checks stop it
        name = next(n for n, e in h["tensors"].items() if e["shape"] and len(e["shape"]) == 2)
        module = name.rsplit(".", 1)[0]
        h["arch"]["modules"][module]["args"]["out_features"] = 10**9
        h["tensors"][name]["shape"][0] = 10**9

    return [
        ("inflate shape x1000", shape(1000)),
        ("inflate shape x10^12", shape(10**12)),
        ("consistent 10^9 layer", consistent_inflation),
        ("zero shape", lambda h: _first(h).__setitem__("shape", [0])),
        ("negative dim", lambda h: _first(h)["shape"].__setitem__(0, -5)),
        ("string dim", lambda h: _first(h)["shape"].__setitem__(0, "8")),
        ("100 dims", lambda h: _first(h).__setitem__("shape", [1] * 100)),
        ("dtype os.system", lambda h: _first(h).__setitem__("dtype", "os.system")),
        ("dtype float64", lambda h: _first(h).__setitem__("dtype", "float64")),
        ("packing zip", lambda h: _first(h).__setitem__("packing", "zip")),
        ("packing swap", lambda h: _first(h).__setitem__("packing", "csr")),
        ("drop part", lambda h: _first(h)["parts"].popitem()),
        ("crc string", lambda h: _first(h)["parts"].update(x="1")),
        ("alias missing", lambda h: h["aliases"].update({"9.weight": "nope"})),
        ("alias shadows", lambda h: h["aliases"].update({next(iter(h["tensors"])): "x"})),
        ("tensors list", lambda h: h.__setitem__("tensors", [])),
        ("modules list", lambda h: h["arch"].__setitem__("modules", [])),
        ("args huge", lambda h: h["arch"]["modules"]["0"]["args"].update(in_features=10**15)),
        ("args string", lambda h: h["arch"]["modules"]["0"]["args"].update(in_features="x")),
        ("attr new name", lambda h: h["arch"]["modules"]["0"].update(attrs={"newattr": 1})),
        ("attr kind", lambda h: h["arch"]["modules"]["1"].update(attrs={"inplace": "yes"})),
        ("extra module", lambda h: h["arch"]["modules"].update({"9": {"type": "x:y"}})),
        ("orphan module", lambda h: h["arch"]["modules"].update({"7.3": {"type": "x"}})),
        ("format", lambda h: h.__setitem__("format", "secateurs.model/0")),
    ]


def _bad_csr(kind: str) -> Callable[[dict[str, torch.Tensor], dict], None]:
    def edit(tensors: dict[str, torch.Tensor], header: dict) -> None:
        csr = [n for n, e in header["tensors"].items() if e["packing"] == "csr"]
        name = max(csr, key=lambda n: tensors[f"{n}::crow"].numel())  # a matrix, not a bias
        crow, col = tensors[f"{name}::crow"], tensors[f"{name}::col"]
        cols = header["tensors"][name]["shape"][-1]
        if kind == "col out of range" and col.numel():
            col[0] = cols + 3
        elif kind == "col negative" and col.numel():
            col[-1] = -1
        elif kind == "duplicate col":
            row = int(torch.argmax((crow[1:] - crow[:-1]).long()))
            lo = int(crow[row])
            col[lo + 1] = col[lo]
        elif kind == "crow decreasing":
            crow[1] = crow[2] + 1
        elif kind == "crow end":
            crow[-1] = crow[-1] - 1
        elif kind == "crow start":
            crow[0] = 1

    return edit


def _bad_bitmask(kind: str) -> Callable[[dict[str, torch.Tensor], dict], None]:
    def edit(tensors: dict[str, torch.Tensor], header: dict) -> None:
        name = next(n for n, e in header["tensors"].items() if e["packing"] == "bitmask")
        if kind == "extra bit":
            mask = tensors[f"{name}::mask"]
            mask[mask != 0xFF] = 0xFF  # mark zeros as non-zeros
        elif kind == "short values":
            tensors[f"{name}::values"] = tensors[f"{name}::values"][:-1].clone()
        elif kind == "long mask":
            tensors[f"{name}::mask"] = torch.cat([tensors[f"{name}::mask"], torch.ones(4).byte()])

    return edit


def data_edits(kind: str) -> list[tuple[str, Callable[[dict[str, torch.Tensor], dict], None]]]:
    """Edits of the stored parts (CRCs recomputed) that only the index checks can catch."""
    edits: list[tuple[str, Callable]] = []
    if kind == "csr":
        for k in (
            "col out of range",
            "col negative",
            "duplicate col",
            "crow decreasing",
            "crow end",
            "crow start",
        ):
            edits.append((k, _bad_csr(k)))
    if kind == "bitmask":
        for k in ("extra bit", "short values", "long mask"):
            edits.append((k, _bad_bitmask(k)))

    def dense_wrong_shape(tensors: dict[str, torch.Tensor], header: dict) -> None:
        key = next(k for k in tensors if k.endswith("::data") or k.endswith("::values"))
        tensors[key] = torch.cat([tensors[key].reshape(-1), tensors[key].reshape(-1)])

    def wrong_dtype(tensors: dict[str, torch.Tensor], header: dict) -> None:
        key = next(iter(tensors))
        tensors[key] = tensors[key].double()

    edits += [("part twice as long", dense_wrong_shape), ("part float64", wrong_dtype)]
    return edits


def corrupted_variants(
    good: dict[str, Path], folder: Path, n: int, seed: int = 0
) -> Iterator[tuple[str, Path]]:
    """`n` corrupted files (description, path), spread over the good files."""
    rng = random.Random(seed)
    made = 0
    kinds = list(good)
    structured_edits = [(f"header: {name}", "header", edit) for name, edit in header_edits()] + [
        ("deep JSON 100000", "raw", _deep(100_000)),
        ("deep JSON 70", "raw", _deep(70)),
    ]
    i = 0
    used = dict.fromkeys([*kinds, "header"], 0)  # each kind cycles through its own edits
    while made < n:
        kind = kinds[(i // 4) % len(kinds)]  # every kind meets every corruption
        path = good[kind]
        data = path.read_bytes()
        out = folder / f"v{made}.safetensors"
        choice = i % 4
        i += 1
        if choice == 0:
            cut = rng.randrange(0, len(data))
            out.write_bytes(data[:cut])
            label = f"{kind}: truncated at {cut}/{len(data)}"
        elif choice == 1:
            flipped = bytearray(data)
            for _ in range(rng.choice((1, 1, 2, 8))):
                pos = rng.randrange(len(flipped))
                flipped[pos] ^= 1 << rng.randrange(8)
            out.write_bytes(bytes(flipped))
            label = f"{kind}: bit flips"
        elif choice == 2:
            name, how, edit = structured_edits[used["header"] % len(structured_edits)]
            used["header"] += 1
            try:
                if how == "header":
                    _edit_header(path, out, edit)
                else:
                    tensors, _ = read(path)
                    write(out, tensors, edit)
            except (LookupError, StopIteration, IndexError, KeyError, TypeError):
                continue
            label = f"{kind}: {name}"
        else:
            edits = data_edits(kind)
            name, edit = edits[used[kind] % len(edits)]
            used[kind] += 1
            tensors, header = read(path)
            try:
                edit(tensors, header)
            except (StopIteration, IndexError, RuntimeError):
                continue
            write(out, tensors, header)
            label = f"{kind}: data {name}"
        made += 1
        yield label, out


# ----------------------------------------------------------------------------- running them

CLEAR_ERRORS = (ValueError, FileNotFoundError)


def outcome(path: Path, reference: dict[str, torch.Tensor] | None = None) -> tuple[str, float]:
    """Load `path` and read it as `secateurs inspect` does: 'error: Type' for a clear error,
    'same' when it loads to the reference weights, else what went wrong."""
    t0 = time.perf_counter()
    try:
        model = io.load(path)
        io.load_state_dict(path)
    except CLEAR_ERRORS as e:
        return f"error: {type(e).__name__}", time.perf_counter() - t0
    except Exception as e:
        return f"UNCLEAR {type(e).__name__}: {e}", time.perf_counter() - t0
    sd = model.state_dict()
    same = reference is not None and sd.keys() == reference.keys()
    same = same and all(torch.equal(sd[k], reference[k]) for k in sd)
    return ("same" if same else "LOADED DIFFERENT"), time.perf_counter() - t0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_fuzz(folder: Path, n: int, seed: int = 0) -> dict[str, Any]:
    """Build `n` corrupted variants and load each; the figures as a dict."""
    good = good_files(folder)
    refs = {k: io.load_state_dict(p) for k, p in good.items()}
    rss0 = _rss_mb()
    tried = handled = 0
    slowest = 0.0
    findings = []
    for label, path in corrupted_variants(good, folder, n, seed):
        kind = label.split(":", 1)[0]
        result, seconds = outcome(path, refs[kind])
        tried += 1
        slowest = max(slowest, seconds)
        if result.startswith(("error:", "same")) and seconds < 5.0:
            handled += 1
        else:
            findings.append(f"{label}: {result} ({seconds:.2f} s)")
        path.unlink()
    return {
        "tried": tried,
        "handled": handled,
        "slowest_s": round(slowest, 3),
        "peak_rss_growth_mb": round(_rss_mb() - rss0, 1),
        "findings": findings,
    }


def _cli(*args: Any) -> int:
    from typer.testing import CliRunner

    from secateurs.cli import app

    return CliRunner().invoke(app, [str(a) for a in args]).exit_code


def run_hostile(folder: Path) -> dict[str, Any]:
    """Every hostile file through every entry point of the API and the CLI that reads a model
    file; counts, and any marker seen."""
    from secateurs.search.recipe import Recipe, save_recipe

    marker = folder / "PWNED"
    recipe = save_recipe(
        Recipe.model_validate({"prune": {"method": "unstructured", "sparsity": 0.5}}),
        folder / "recipe.yaml",
    )
    out = folder / "out.safetensors"
    entries: dict[str, Callable[[Path], Any]] = {
        "io.load": io.load,
        "io.load_model_any": io.load_model_any,
        "io.inspect_file": io.model_file.inspect_file,  # tensors only: succeeds
        "cli inspect": lambda p: _cli("inspect", p),
        "cli prune": lambda p: _cli("prune", "unstructured", p, "-s", "0.5", "-o", out),
        "cli prune recipe": lambda p: _cli("prune", "recipe", p, recipe, "-o", out),
    }
    expected = {"io.inspect_file": None, "cli inspect": 0, "cli prune": 2}
    expected["cli prune recipe"] = 2
    sys.path.insert(0, str(folder))  # worst case: the folder is importable (python -m)
    tried = handled = 0
    findings = []
    try:
        for name, path in hostile_files(folder, marker):
            for entry, call in entries.items():
                tried += 1
                try:
                    result = call(path)
                    ok = entry in expected and (
                        expected[entry] is None or result == expected[entry]
                    )
                except CLEAR_ERRORS:
                    ok = entry not in expected
                except Exception as e:
                    ok = False
                    findings.append(f"{name} via {entry}: {type(e).__name__}: {e}")
                if marker.exists() or out.exists():
                    ok = False
                    findings.append(f"{name} via {entry}: RAN CODE or wrote a model")
                    marker.unlink(missing_ok=True)
                    out.unlink(missing_ok=True)
                handled += ok
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("evil_beside", None)
    return {"tried": tried, "handled": handled, "findings": findings}


def main(argv: list[str]) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz", type=int, default=320, help="corrupted variants to try")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "hostile").mkdir()
        (Path(d) / "fuzz").mkdir()
        hostile = run_hostile(Path(d) / "hostile")
        fuzz = run_fuzz(Path(d) / "fuzz", args.fuzz, args.seed)
    if args.json:
        print(json.dumps({"hostile": hostile, "fuzz": fuzz}))
    else:
        print(
            f"hostile headers x entry points: {hostile['tried']} tried, "
            f"{hostile['handled']} handled (no code ran, clear error)"
        )
        print(
            f"corrupted files: {fuzz['tried']} tried, {fuzz['handled']} handled "
            f"(clear error or identical weights, < 5 s each); slowest {fuzz['slowest_s']} s, "
            f"peak RSS growth {fuzz['peak_rss_growth_mb']} MB"
        )
        for line in hostile["findings"] + fuzz["findings"]:
            print("  FINDING", line)
    ok = hostile["handled"] == hostile["tried"] and fuzz["handled"] == fuzz["tried"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
