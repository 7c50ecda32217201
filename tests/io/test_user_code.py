"""`code=` / `--code`: classes of the user's script resolve a pickle's `__main__` names; the
script's training block never runs; TorchScript archives need trust and are not pruned."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from secateurs.io import load_model_any
from secateurs.io.user_code import run_user_code

SCRIPT = '''
import torch
from torch import nn
from usercode_helpers import width  # a neighbour module, found as when Python runs the script

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, width())

    def forward(self, x):
        return self.fc(x)

if __name__ == "__main__":
    raise SystemExit("the training block must not run")
'''


@pytest.fixture
def script(tmp_path):
    (tmp_path / "usercode_helpers.py").write_text("def width():\n    return 3\n")
    path = tmp_path / "usercode_train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    yield path
    for name in ("usercode_train", "usercode_helpers"):
        sys.modules.pop(name, None)


def _pickle_as_main(model: torch.nn.Module, path) -> None:
    """torch.save(model) as a script run as __main__ would write it: `__main__.Net`."""
    cls = type(model)
    main = sys.modules["__main__"]
    original = cls.__module__
    cls.__module__ = "__main__"
    setattr(main, cls.__name__, cls)
    try:
        torch.save(model, path)
    finally:
        cls.__module__ = original
        delattr(main, cls.__name__)


def test_a_main_pickle_loads_with_the_script_and_only_then(script, tmp_path):
    module = run_user_code(script)
    assert module.__name__ == "usercode_train" and sys.modules["usercode_train"] is module
    assert run_user_code(script) is module  # run once, then reused
    torch.manual_seed(0)
    model = module.Net()
    _pickle_as_main(model, tmp_path / "model.pth")
    raw = (tmp_path / "model.pth").read_bytes()
    assert b"__main__" in raw

    with pytest.raises(ValueError, match="--trust-pickle and --code FILE"):
        load_model_any(tmp_path / "model.pth")
    with pytest.raises(ValueError, match=r"pickled from a script: __main__\.Net"):
        load_model_any(tmp_path / "model.pth", trust_pickle=True)
    with pytest.raises(ValueError, match="pass --trust-pickle"):
        load_model_any(tmp_path / "model.pth", code=script)
    back = load_model_any(tmp_path / "model.pth", trust_pickle=True, code=script)
    assert type(back) is module.Net
    x = torch.randn(2, 4)
    torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)


def test_classes_from_a_module_the_script_imports_resolve_too(script, tmp_path):
    (tmp_path / "usercode_models.py").write_text(
        "from torch import nn\n\nclass Wide(nn.Linear):\n    pass\n"
    )
    script.write_text("from usercode_models import Wide\n")
    sys.path.insert(0, str(tmp_path))
    try:
        from usercode_models import Wide

        torch.save(Wide(2, 2), tmp_path / "wide.pth")  # pickled as usercode_models.Wide
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("usercode_models", None)
    back = load_model_any(tmp_path / "wide.pth", trust_pickle=True, code=script)
    assert type(back).__name__ == "Wide"
    sys.modules.pop("usercode_models", None)


def test_bad_code_files_are_one_line_errors(tmp_path):
    broken = tmp_path / "usercode_broken.py"
    broken.write_text("import torch\nraise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(ValueError, match=r"running --code .* RuntimeError: boom$"):
        run_user_code(broken)
    assert "usercode_broken" not in sys.modules  # nothing half-registered
    (tmp_path / "model.pth").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.py"):
        run_user_code(tmp_path / "model.pth")
    with pytest.raises(FileNotFoundError):
        run_user_code(tmp_path / "missing.py")


def test_torchscript_needs_trust_and_is_inspected_not_pruned(tmp_path):
    from secateurs.io.export import export
    from secateurs.prune import unstructured_

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    torch.jit.script(net).save(str(tmp_path / "ts.pt"))
    with pytest.raises(ValueError, match="TorchScript archive"):
        load_model_any(tmp_path / "ts.pt")
    scripted = load_model_any(tmp_path / "ts.pt", trust_pickle=True)
    with pytest.raises(TypeError, match="TorchScript"):
        unstructured_(scripted, sparsity=0.5)
    export(scripted, tmp_path / "ts.safetensors")  # its weights export as a state dict
    from safetensors.torch import load_file

    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    fresh.load_state_dict(load_file(tmp_path / "ts.safetensors"))
    x = torch.randn(5, 4)
    torch.testing.assert_close(fresh(x), net(x), rtol=0, atol=0)
