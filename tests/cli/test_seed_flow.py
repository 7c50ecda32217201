"""The user's first scenario, exactly as they have it: a training script defines `MyMLP`, trains
it on digits and pickles the whole model with `torch.save(model, ...)` (so the class is recorded
as `__main__.MyMLP`). The CLI prunes the file with `--trust-pickle --code train.py`, reports
accuracy before and after, and writes the ordinary state dict; a plain PyTorch process with no
secateurs import loads it into `MyMLP` and gets the outputs of an independent reference."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from secateurs.cli import app
from secateurs.io import load_model_any

SCRIPT = "seedflow_train"  # a name no other test imports: --code registers it as a module
TRAIN = """
import sys

import torch
from torch import nn


class MyMLP(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)


if __name__ == "__main__":  # the training: must not run when secateurs reads the classes
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y = digits()
    model = MyMLP(hidden=48)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(200):
        i = torch.randint(0, 1400, (64,))
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model, sys.argv[1])
    open(sys.argv[1] + ".trained", "w").write("the training block ran")
"""
EVALUATE = f"""
from {SCRIPT} import digits

x, y = digits()

def accuracy(model):
    return {{"accuracy": (model(x[1400:]).argmax(1) == y[1400:]).float().mean().item()}}
"""
PLAIN = f"""
import sys
import torch
from safetensors.torch import load_file
from {SCRIPT} import MyMLP

x = torch.load("x.pt", weights_only=True)
a = MyMLP(hidden=48)
a.load_state_dict(load_file("pruned.safetensors"))
b = MyMLP(hidden=48)
b.load_state_dict(torch.load("pruned.pth", weights_only=True))
with torch.no_grad():
    torch.save({{"safetensors": a(x), "pth": b(x)}}, "plain-out.pt")
assert not [k for k in sys.modules if k.split(".")[0] == "secateurs"]
"""
THRESHOLD = 0.05


@pytest.fixture(scope="module")
def trained_by_user(tmp_path_factory):
    d = tmp_path_factory.mktemp("user")
    (d / f"{SCRIPT}.py").write_text(textwrap.dedent(TRAIN))
    (d / "seedflow_eval.py").write_text(textwrap.dedent(EVALUATE))
    subprocess.run([sys.executable, f"{SCRIPT}.py", "model.pth"], cwd=d, check=True, timeout=120)
    (d / "model.pth.trained").unlink()
    return d


@pytest.fixture
def user_folder(trained_by_user, monkeypatch):
    monkeypatch.chdir(trained_by_user)
    yield trained_by_user
    for name in (SCRIPT, "seedflow_eval"):
        sys.modules.pop(name, None)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_pickled_script_model_prunes_and_loads_into_the_users_class(user_folder):
    d = user_folder
    common = ["--trust-pickle", "--code", f"{SCRIPT}.py", "-t", THRESHOLD]
    r = run("prune", "unstructured", "model.pth", *common, "--eval", "seedflow_eval:accuracy",
            "-o", "pruned.safetensors", "--format", "safetensors")  # fmt: skip
    assert r.exit_code == 0, r.output
    before, after = (
        float(v)
        for v in re.search(r"accuracy\s+([\d.]+)\s+([\d.]+)", r.output).groups()  # type: ignore[union-attr]
    )
    assert before > 0.9 and after > 0.85
    assert not (d / "model.pth.trained").exists()  # the training block did not run
    r = run("prune", "unstructured", "model.pth", *common, "-q", "-o", "pruned.pth")
    assert r.exit_code == 0, r.output

    # independent reference: the user's model with |w| < t zeroed by hand in every Linear
    # but the output layer (which, like embeddings, stays dense by default)
    reference = load_model_any(d / "model.pth", trust_pickle=True, code=d / f"{SCRIPT}.py")
    assert type(reference).__name__ == "MyMLP"
    with torch.no_grad():
        for layer in (reference.fc1, reference.fc2):
            layer.weight[layer.weight.abs() < THRESHOLD] = 0
    x = torch.rand(32, 64)
    torch.save(x, d / "x.pt")
    (d / "plain.py").write_text(textwrap.dedent(PLAIN))
    subprocess.run([sys.executable, "plain.py"], cwd=d, check=True, timeout=120)
    got = torch.load(d / "plain-out.pt", weights_only=True)
    with torch.no_grad():
        want = reference(x)
    close = {"rtol": 1e-6, "atol": 1e-6}  # another process may sum in another order
    torch.testing.assert_close(got["safetensors"], want, **close)
    torch.testing.assert_close(got["pth"], want, **close)

    # inspect and export read the same file the same way
    r = run("inspect", "model.pth", "--trust-pickle", "--code", f"{SCRIPT}.py", "-q")
    assert r.exit_code == 0 and "compression" in r.output and "fc1" not in r.output


def test_pickled_script_model_errors_say_what_to_pass(user_folder):
    r = run("inspect", "model.pth")
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "--trust-pickle" in line and "--code" in line
    assert "__main__.MyMLP" in line
    r = run("inspect", "model.pth", "--trust-pickle")
    assert r.exit_code == 2 and "\n" not in r.output.strip()
    assert "--code FILE" in r.output and "Weights only load failed" not in r.output
    r = run("inspect", "model.pth", "--code", f"{SCRIPT}.py")
    assert r.exit_code == 2 and "--trust-pickle" in r.output
    assert SCRIPT not in sys.modules  # refused before the file ran
