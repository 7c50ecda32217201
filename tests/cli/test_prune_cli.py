"""`secateurs prune` and `secateurs inspect` end to end on a model trained in the test."""

import json
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from secateurs import io
from secateurs.cli import app
from secateurs.measure import accuracy
from secateurs.train import fit
from secateurs.zoo.data import digits
from secateurs.zoo.models import MLP

ARCH = "secateurs.zoo.models:mlp"
EVAL_MODULE = """
from secateurs.measure import accuracy
from secateurs.zoo.data import digits

_, _, _test = digits().loaders()

def evaluate(model):
    return {"test_acc": accuracy(model, _test)}

def broken(model):
    raise RuntimeError("metric exploded")

def batches():
    x, y = digits().x_train, digits().y_train
    return [(x[:64], y[:64]), (x[64:128], y[64:128])]
"""


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("trained")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = MLP()
        train, _, test = digits().loaders(batch_size=64, seed=0)
        fit(model, train, lr=1e-3, epochs=8)
    finally:
        torch.set_num_threads(threads)
    torch.save(model.state_dict(), d / "digits.pt")
    (d / "digits_eval_mod.py").write_text(textwrap.dedent(EVAL_MODULE))
    return d, model, accuracy(model, test)


def test_prune_inspect_and_load_back(trained, tmp_path, monkeypatch):
    d, model, acc = trained
    monkeypatch.syspath_prepend(str(d))
    out = tmp_path / "pruned.safetensors"
    r = run(
        "prune",
        "unstructured",
        d / "digits.pt",
        "--arch",
        ARCH,
        "--sparsity",
        "0.8",
        "--eval",
        "digits_eval_mod:evaluate",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    assert "net.1.weight" in r.output and "total" in r.output
    assert "test_acc" in r.output and f"{acc:.6g}" in r.output
    assert out.exists()

    r = run("inspect", out)
    assert r.exit_code == 0, r.output
    assert "net.1.weight" in r.output and "net.5.bias" in r.output and "file:" in r.output
    r = run("inspect", out, "--json")
    info = json.loads(r.output)
    weights = [x for x in info["layers"] if x["name"] in ("net.1.weight", "net.3.weight")]
    pruned = sum(x["params"] - x["nonzeros"] for x in weights)
    assert pruned == round(0.8 * sum(x["params"] for x in weights))
    assert info["file_bytes"] == out.stat().st_size

    back = io.load(out, arch=ARCH)
    assert type(back) is MLP
    header = io.read_header(out)
    assert header["metadata"]["eval"]["before"]["test_acc"] == pytest.approx(acc)
    x = torch.randn(5, 64)
    with torch.no_grad():
        assert float((back.net[1].weight == 0).float().mean()) > 0.5
        assert not torch.equal(back(x), model(x))


def test_threshold_nm_and_layer_scope(trained, tmp_path):
    d, model, _ = trained
    r = run(
        "prune",
        "unstructured",
        d / "digits.pt",
        "--arch",
        ARCH,
        "--threshold",
        "0.01",
        "-q",
        "-o",
        tmp_path / "t.safetensors",
    )
    assert r.exit_code == 0, r.output
    w = model.net[1].weight.detach()
    back = io.load(tmp_path / "t.safetensors", arch=ARCH)
    assert torch.equal(back.net[1].weight != 0, w.abs() >= 0.01)
    assert torch.equal(back.net[5].weight, model.net[5].weight)  # the classifier stays dense

    r = run(
        "prune",
        "nm",
        d / "digits.pt",
        "--arch",
        ARCH,
        "--pattern",
        "2:4",
        "--all",
        "-q",
        "-o",
        tmp_path / "nm.safetensors",
    )
    assert r.exit_code == 0, r.output
    from secateurs.prune import check_nm

    nm_model = io.load(tmp_path / "nm.safetensors", arch=ARCH)
    assert all(check_nm(nm_model.net[i].weight, 2, 4) for i in (1, 3, 5))

    again_args = ["prune", "unstructured", tmp_path / "t.safetensors", "--sparsity", "0.5"]
    again_args += ["--scope", "layer"]
    again_args += ["--exclude", "net.3*", "-q", "-o", tmp_path / "again.safetensors"]
    r = run(*again_args)  # the file names its factory: not run without the user's word
    assert r.exit_code == 2 and "--trust-arch" in r.output, r.output
    r = run(*again_args, "--trust-arch")
    assert r.exit_code == 0, r.output
    again = io.load(tmp_path / "again.safetensors", trust_arch=True)
    assert torch.equal(again.net[3].weight, back.net[3].weight)  # net.3 excluded
    assert float((again.net[1].weight == 0).float().mean()) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sparsity", "1.5"], "sparsity must be in [0, 1)"),
        (["--threshold", "-0.1"], "threshold"),
        (["--threshold", "100"], "--force"),
        (["--sparsity", "0.5", "--threshold", "0.1"], "exactly one"),
        (["--sparsity", "0.5", "--exclude", "net.42"], "matched no"),
        (["--sparsity", "0.5", "--eval", "no_such_module:f"], "cannot import"),
        (["--threshold", "0.1", "--include", "net.1*", "--all", "--exclude", "x"], "contradict"),
        (["--sparsity", "0.5", "--criterion", "taylor"], "--data"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(trained, tmp_path, args, message):
    d, _, _ = trained
    out = tmp_path / "out.safetensors"
    r = run("prune", "unstructured", d / "digits.pt", "--arch", ARCH, *args, "-o", out)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_model_files(trained, tmp_path):
    d, model, _ = trained
    out = tmp_path / "out.safetensors"
    cases = [
        ([d / "digits.pt"], "--arch"),  # state dict without --arch
        ([d / "digits.pt", "--arch", "nope_pkg:mlp"], "cannot import"),
        ([tmp_path / "missing.pt"], "not found"),
    ]
    torch.save(model, tmp_path / "whole.pt")
    cases.append(([tmp_path / "whole.pt"], "--trust-pickle"))
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    cases.append(([tmp_path / "corrupt.safetensors"], "error:"))
    for args, message in cases:
        r = run("prune", "unstructured", *args, "--sparsity", "0.5", "-o", out)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (args, r.output)
        assert not out.exists()
    r = run(
        "prune",
        "unstructured",
        tmp_path / "whole.pt",
        "--trust-pickle",
        "--sparsity",
        "0.5",
        "-q",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.output
    r = run("inspect", d / "digits.pt", "--arch", ARCH)
    assert r.exit_code == 0 and "0.00%" in r.output


def test_failing_eval_exits_1_without_output(trained, tmp_path, monkeypatch):
    d, _, _ = trained
    monkeypatch.syspath_prepend(str(d))
    out = tmp_path / "out.safetensors"
    r = run(
        "prune",
        "unstructured",
        d / "digits.pt",
        "--arch",
        ARCH,
        "--sparsity",
        "0.5",
        "--eval",
        "digits_eval_mod:broken",
        "-o",
        out,
    )
    assert r.exit_code == 1 and "metric exploded" in r.output
    assert not out.exists()


def test_nm_pattern_and_bad_pattern(trained, tmp_path):
    d, _, _ = trained
    out = tmp_path / "nm.safetensors"
    r = run("prune", "nm", d / "digits.pt", "--arch", ARCH, "--pattern", "2-4", "-o", out)
    assert r.exit_code == 2 and "N:M" in r.output and not out.exists()


def test_structured_importance_gets_the_data(trained, tmp_path, monkeypatch):
    """Bug: `--structured --importance taylor --data F` never passed the batches on."""
    d, model, _ = trained
    monkeypatch.syspath_prepend(str(d))
    import digits_eval_mod

    from secateurs.prune import structured

    out = tmp_path / "small.safetensors"
    args = ["--ratio", "0.5", "--input-shape", "1,64", "--importance", "taylor"]
    r = run("prune", "structured", d / "digits.pt", "--arch", ARCH, *args,
            "--data", "digits_eval_mod:batches", "-q", "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    want, _ = structured(
        model, torch.randn(1, 64), ratio=0.5, importance="taylor", data=digits_eval_mod.batches()
    )
    got = io.load(out, trust_arch=True)
    for a, b in zip(got.state_dict().values(), want.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    r = run("prune", "structured", d / "digits.pt", "--arch", ARCH, *args, "-o", out)
    assert r.exit_code == 2 and "data" in r.output  # taylor without --data: bad input


def test_structured_selection_is_protect_not_include(trained, tmp_path):
    """Bug: `--include` was silently ignored with --structured; now it is refused, and
    --protect (what structured pruning understands) keeps a layer's width."""
    d, _, _ = trained
    out = tmp_path / "small.safetensors"
    base = ["prune", "structured", d / "digits.pt", "--arch", ARCH, "--ratio", "0.5",
            "--input-shape", "1,64", "-q", "-o", out]  # fmt: skip
    r = run(*base, "--include", "net.1*")
    assert r.exit_code == 2 and "No such option" in r.output and not out.exists()
    r = run(*base, "--protect", "net.1")
    assert r.exit_code == 0, r.output
    widths = [
        m.out_features
        for m in io.load(out, trust_arch=True).modules()
        if isinstance(m, torch.nn.Linear)
    ]
    full = [m.out_features for m in MLP().modules() if isinstance(m, torch.nn.Linear)]
    assert widths[0] == full[0] and widths[1] < full[1] and widths[-1] == full[-1]
