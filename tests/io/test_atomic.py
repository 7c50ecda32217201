import os
import stat

import pytest

from secateurs.io import atomic_path, write_text_atomic


def test_atomic_write_replaces_only_on_success(tmp_path):
    p = tmp_path / "out.txt"
    write_text_atomic(p, "good")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert p.read_text() == "good"
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]  # no temporary left behind


def test_atomic_output_gets_the_mode_open_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_text_atomic(tmp_path / "report.html", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
