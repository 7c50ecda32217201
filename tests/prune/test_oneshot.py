"""Wanda and SparseGPT against float64 implementations written from the papers' equations.

The references are deliberately naive: Wanda sorts |W| * ||X||_2 row by row; SparseGPT
eliminates one column at a time with the explicit inverse of the trailing Hessian block (the
Schur-complement form of the OBS update), with no Cholesky factor and no lazy batching.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from secateurs import prune
from secateurs.prune.mask import get_mask
from secateurs.prune.nm import check_nm


def _correlated(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)
    scale = torch.rand(d, generator=g) * 3 + 0.1  # columns of very different size
    return (torch.randn(n, d, generator=g) @ mix) * scale


def _keep_rows_ref(score: torch.Tensor, sparsity: float | None, nm: tuple[int, int] | None):
    rows, cols = score.shape
    keep = torch.ones(rows, cols, dtype=torch.bool)
    for r in range(rows):
        if nm is None:
            k = round(sparsity * cols)
            gone = sorted(range(cols), key=lambda j: (float(score[r, j]), j))[:k]
            keep[r, gone] = False
        else:
            n, m = nm
            for g0 in range(0, cols, m):
                group = sorted(range(g0, g0 + m), key=lambda j: (float(score[r, j]), j))
                keep[r, group[: m - n]] = False
    return keep


@pytest.mark.parametrize("pattern", [{"sparsity": 0.5}, {"sparsity": 0.3}, {"nm": (2, 4)}])
def test_wanda_masks_equal_the_papers_rule_layer_after_layer(pattern):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 8))
    cal = [_correlated(20, 24, s) for s in range(3)]
    ref = copy.deepcopy(model)
    report = prune.wanda_(model, cal, exclude=[], **pattern)

    x = torch.cat(cal).double()
    for i in (0, 2):
        layer = ref[i]
        score = layer.weight.detach().double().abs() * x.norm(dim=0)
        keep = _keep_rows_ref(score, pattern.get("sparsity"), pattern.get("nm"))
        assert torch.equal(get_mask(model[i], "weight").mask, keep), f"layer {i}"
        with torch.no_grad():
            layer.weight.mul_(keep)  # the next layer sees the pruned layer's output
        if i == 0:
            with torch.no_grad():
                x = ref[:2](torch.cat(cal)).double()  # the pruned layer 0, then ReLU
    assert report.method == ("wanda/2:4" if "nm" in pattern else f"wanda/{pattern['sparsity']:g}")
    # per row: round(sparsity * inputs) of every row
    assert report.sparsity == pytest.approx(pattern.get("sparsity", 0.5), abs=0.01)


def _sparsegpt_ref(w, h, sparsity, nm, block, damp):
    """Column-by-column OBS in float64 with explicit inverses of the trailing Hessian."""
    w = w.double().clone()
    h = h.double().clone()
    d = h.diagonal()
    d[d == 0] = 1
    d += damp * d.mean()
    rows, cols = w.shape
    # [inv(H[k:, k:])]: the inverse Hessian left after eliminating the columns before k
    inv_tail = [torch.linalg.inv(h[k:, k:]) for k in range(cols)]
    drop = torch.zeros(rows, cols, dtype=torch.bool)
    for j in range(cols):
        if nm is None and j % block == 0:
            end = min(j + block, cols)
            score = torch.stack(
                [w[:, k] ** 2 / inv_tail[k][0, 0] for k in range(j, end)], 1
            ).reshape(-1)
            k = round(sparsity * score.numel())
            order = sorted(range(score.numel()), key=lambda i: (float(score[i]), i))[:k]
            sub = torch.zeros(rows * (end - j), dtype=torch.bool)
            sub[order] = True
            drop[:, j:end] = sub.reshape(rows, end - j)
        if nm is not None and j % nm[1] == 0:
            n, m = nm
            score = torch.stack([w[:, k] ** 2 / inv_tail[k][0, 0] for k in range(j, j + m)], 1)
            for r in range(rows):
                group = sorted(range(m), key=lambda i: (float(score[r, i]), i))[: m - n]
                drop[r, [j + g for g in group]] = True
        hi = inv_tail[j]
        e = torch.where(drop[:, j], w[:, j], torch.zeros_like(w[:, j]))
        w[:, j:] -= e[:, None] * (hi[0, :] / hi[0, 0])[None, :]
        w[:, j] = torch.where(drop[:, j], 0.0, w[:, j])
    return w, ~drop


@pytest.mark.parametrize(
    "pattern,block", [({"sparsity": 0.5}, 8), ({"sparsity": 0.6}, 32), ({"nm": (2, 4)}, 8)]
)
def test_sparsegpt_equals_column_by_column_obs_in_float64(pattern, block):
    torch.manual_seed(1)
    layer = nn.Linear(32, 6)
    cal = [_correlated(40, 32, s) for s in range(2)]
    x = torch.cat(cal).double()
    w0 = layer.weight.detach().clone()
    prune.sparsegpt_(layer, cal, exclude=[], block_size=block, dampening=0.01, **pattern)
    ref_w, ref_keep = _sparsegpt_ref(
        w0, x.t() @ x, pattern.get("sparsity"), pattern.get("nm"), block, 0.01
    )
    assert torch.equal(get_mask(layer, "weight").mask, ref_keep)
    torch.testing.assert_close(layer.weight.detach().double(), ref_w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pattern", [{"sparsity": 0.5}, {"nm": (2, 4)}])
def test_sparsegpt_reconstructs_better_than_wanda_and_magnitude(pattern):
    torch.manual_seed(2)
    dense = nn.Linear(64, 32)
    cal = [_correlated(64, 64, s) for s in range(4)]
    x = torch.cat(cal)
    errors = {}
    for name in ("magnitude", "wanda", "sparsegpt"):
        layer = copy.deepcopy(dense)
        if name == "magnitude":
            if "nm" in pattern:
                prune.nm_(layer, 2, 4, exclude=[])
            else:
                prune.unstructured_(layer, sparsity=0.5, scope="layer", exclude=[])
        elif name == "wanda":
            prune.wanda_(layer, cal, exclude=[], **pattern)
        else:
            prune.sparsegpt_(layer, cal, exclude=[], block_size=16, **pattern)
        with torch.no_grad():
            errors[name] = float((dense(x) - layer(x)).norm() / dense(x).norm())
    assert errors["sparsegpt"] < errors["wanda"] < errors["magnitude"], errors
    assert errors["sparsegpt"] < 0.95 * errors["wanda"], errors


def test_singular_hessian_is_a_clear_error():
    layer = nn.Linear(4, 3)
    x = torch.randn(10, 4)
    x[:, 1] = x[:, 0]  # two identical inputs: H is singular
    with pytest.raises(prune.SingularHessianError, match="dampening"):
        prune.sparsegpt_(layer, [x], sparsity=0.5, exclude=[], dampening=0.0)
    prune.sparsegpt_(layer, [x], sparsity=0.5, exclude=[], dampening=0.01)  # damped: fine


def _block_reference_wanda(model, cal, blocks, names, sparsity):
    """Prune block after block, each from a full forward of the partly pruned model."""
    for block in blocks:
        sq = {}
        hooks = [
            getattr(block, n).register_forward_pre_hook(
                lambda m, a, n=n, sq=sq: sq.__setitem__(
                    n, sq.get(n, 0) + a[0].reshape(-1, a[0].shape[-1]).double().square().sum(0)
                )
            )
            for n in names
        ]
        with torch.no_grad():
            for c in cal:
                model(c)
        for h in hooks:
            h.remove()
        for n in names:
            lin = getattr(block, n)
            score = lin.weight.detach().double().abs() * sq[n].sqrt()
            keep = _keep_rows_ref(score, sparsity, None)
            with torch.no_grad():
                lin.weight.mul_(keep)


def test_blocks_are_fed_the_outputs_of_the_pruned_blocks_before_them():
    from secateurs.zoo.charlm import char_lm

    torch.manual_seed(3)
    model = char_lm(depth=3, dim=16, heads=2).eval()
    ref = copy.deepcopy(model)
    cal = [
        torch.randint(0, 40, (3, 12), generator=torch.Generator().manual_seed(s)) for s in (0, 1)
    ]
    prune.wanda_(model, cal, sparsity=0.5, include=["blocks.*.fc1", "blocks.*.fc2"])
    _block_reference_wanda(ref, cal, list(ref.blocks), ["fc1", "fc2"], 0.5)
    for b, rb in zip(model.blocks, ref.blocks, strict=True):
        for n in ("fc1", "fc2"):
            assert torch.equal(getattr(b, n).weight != 0, getattr(rb, n).weight != 0)


def _tiny_hf(family):
    import transformers as tf

    if family == "llama":
        cfg = tf.LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        return tf.LlamaForCausalLM(cfg)
    if family == "qwen2":
        cfg = tf.Qwen2Config(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        return tf.Qwen2ForCausalLM(cfg)
    if family == "gpt2":
        cfg = tf.GPT2Config(
            vocab_size=64,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=0,
        )
        return tf.GPT2LMHeadModel(cfg)
    cfg = tf.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    return tf.BertModel(cfg)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "bert"])
@pytest.mark.parametrize("method", ["wanda_", "sparsegpt_"])
def test_hugging_face_families_prune_block_by_block(family, method):
    torch.manual_seed(4)
    model = _tiny_hf(family).eval()
    g = torch.Generator().manual_seed(0)
    cal = [
        {
            "input_ids": torch.randint(0, 64, (2, 16), generator=g),
            "attention_mask": torch.ones(2, 16, dtype=torch.long),
        }
        for _ in range(2)
    ]
    from transformers import BatchEncoding  # what tokenizers return: a Mapping, not a dict

    report = getattr(prune, method)(model, [BatchEncoding(c) for c in cal], nm=(2, 4))
    assert report.layers and report.sparsity == pytest.approx(0.5)
    conv1d = family == "gpt2"
    for layer in report.layers:
        module = model.get_submodule(layer.name.rsplit(".", 1)[0])
        mask = get_mask(module, "weight").mask
        # N:M groups run along the input dimension: dim 0 of GPT-2's transposed Conv1D
        assert check_nm(mask, 2, 4, dim=0 if conv1d else 1), layer.name
        assert int(mask.sum()) * 2 == mask.numel()
    with torch.no_grad():
        out = model(**cal[0])
    assert torch.isfinite(out[0]).all()
    # a pruned model pickles, and loads back with the same masks (the usual parametrizations)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    again = torch.load(buf, weights_only=False)
    first = report.layers[0].name.rsplit(".", 1)[0]
    assert torch.equal(
        get_mask(again.get_submodule(first), "weight").mask,
        get_mask(model.get_submodule(first), "weight").mask,
    )


def test_calibration_forms_and_bad_arguments():
    layer = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    x = torch.randn(5, 8)
    a, b = copy.deepcopy(layer), copy.deepcopy(layer)
    prune.wanda_(a, [x], sparsity=0.5)
    prune.wanda_(b, [(x,)], sparsity=0.5)  # a tuple is positional arguments
    assert torch.equal(get_mask(a[0], "weight").mask, get_mask(b[0], "weight").mask)
    with pytest.raises(ValueError, match="exactly one"):
        prune.wanda_(layer, [x], sparsity=0.5, nm=(2, 4))
    with pytest.raises(TypeError, match=r"\[batch\]"):
        prune.wanda_(layer, x, sparsity=0.5)
    with pytest.raises(ValueError, match="divisible by 3"):
        prune.sparsegpt_(layer, [x], nm=(1, 3))
    with pytest.raises(ValueError, match="empty"):
        prune.sparsegpt_(layer, [], sparsity=0.5)


def test_existing_masks_stay_and_count():
    layer = nn.Linear(16, 8)
    x = torch.randn(30, 16)
    prune.unstructured_(layer, sparsity=0.25, scope="layer", exclude=[])
    before = get_mask(layer, "weight").mask.clone()
    prune.sparsegpt_(layer, [x], nm=(2, 4), exclude=[])
    after = get_mask(layer, "weight").mask
    assert not (after & ~before).any()  # nothing pruned comes back
    assert check_nm(layer.weight, 2, 4)


def test_the_search_can_use_wanda_and_sparsegpt():
    from secateurs.search.config import PruneSpace, Space
    from secateurs.search.crossval import cross_validate
    from secateurs.search.space import grid_points, to_recipe
    from secateurs.zoo import MLP, digits_arrays

    space = Space(prune=PruneSpace(method=["wanda", "sparsegpt"], sparsity=[0.5, 0.7]))
    points = grid_points(space)
    assert [(p["method"], p["sparsity"]) for p in points] == [
        ("wanda", 0.5),
        ("wanda", 0.7),
        ("sparsegpt", 0.5),
        ("sparsegpt", 0.7),
    ]
    nm_space = Space(prune=PruneSpace(method=["sparsegpt"], nm=["2:4", "4:8"]))
    assert [to_recipe(p).prune.label() for p in grid_points(nm_space)] == [
        "2:4 sparsegpt",
        "4:8 sparsegpt",
    ]
    x, y = digits_arrays()
    data = torch.from_numpy(x[:300]), torch.from_numpy(y[:300])
    r = cross_validate(lambda: MLP((64, 32, 10)), data, points[2], k=2, train_steps=10)
    # the hidden layer (64 x 32) loses half its weights; the classifier stays dense
    assert all(f.nonzeros == r.params - 64 * 32 // 2 for f in r.folds)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_cpu_masks():
    from secateurs.zoo.charlm import char_lm

    torch.manual_seed(5)
    cpu = char_lm(dim=32, heads=2).eval()
    gpu = copy.deepcopy(cpu).cuda()
    cal = [
        torch.randint(0, 40, (4, 16), generator=torch.Generator().manual_seed(s)) for s in (0, 1)
    ]
    for fn in (prune.wanda_, prune.sparsegpt_):
        a, b = copy.deepcopy(cpu), copy.deepcopy(gpu)
        fn(a, cal, nm=(2, 4))
        fn(b, cal, nm=(2, 4))  # the calibration is moved to the model's device
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            if name.endswith(".mask"):
                agree = (x == y.cpu()).float().mean()
                assert agree > 0.99, (fn.__name__, name, agree)  # rounding may flip near-ties
            else:
                torch.testing.assert_close(x, y.cpu(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_replayed_blocks_reproduce_the_models_hidden_states(family):
    """Block i run on block i-1's output with block 0's captured keywords (masks with padding,
    position embeddings) gives the hidden states of the model's own forward pass."""
    from secateurs.prune.oneshot import blocks as blk

    torch.manual_seed(6)
    model = _tiny_hf(family).eval()
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0  # padding: the attention mask matters
    batch = {"input_ids": torch.randint(0, 64, (2, 12)), "attention_mask": mask}
    owners = {id(m) for m in model.modules() if m.__class__.__name__ in ("Linear", "Conv1D")}
    stack = list(blk.candidates(model, owners)[0])
    assert len(stack) == 2 and blk.is_chain(model, stack, batch)
    outputs = []
    hook = stack[1].register_forward_hook(lambda m, a, out: outputs.append(blk.output_hidden(out)))
    with torch.no_grad():
        want = model(**batch, output_hidden_states=True).hidden_states
        hook.remove()
        (call,) = blk.capture(model, stack[0], [batch])
        torch.testing.assert_close(blk.hidden(call), want[0])
        first = blk.output_hidden(stack[0](*call[0], **call[1]))
        torch.testing.assert_close(first, want[1])
        args, kwargs = blk.with_hidden(call, first)
        torch.testing.assert_close(blk.output_hidden(stack[1](*args, **kwargs)), outputs[0])
