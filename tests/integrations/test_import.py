"""Importing secateurs (and its integrations package) imports no training framework."""

from __future__ import annotations

from integration_helpers import run_python


def test_import_secateurs_imports_no_framework():
    code = (
        "import sys, secateurs, secateurs.integrations, secateurs.clip, secateurs.prune\n"
        "import secateurs.integrations._torch\n"
        "heavy = [m for m in ('lightning', 'pytorch_lightning', 'transformers', 'keras')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    assert run_python(["-c", code]).strip() == "ok"
