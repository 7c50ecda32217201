"""The report in a real headless Chromium: no console errors, and the plots are drawn."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image

from secateurs.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)"),
    pytest.mark.slow,
]
CONSOLE = re.compile(r":CONSOLE[:(]")


def render(page, tmp_path, size=(1400, 4200)):
    """Open `page` in headless Chromium; return (console lines, screenshot RGB array)."""
    shot = tmp_path / f"{page.stem}.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={shot}",
        f"--window-size={size[0]},{size[1]}",
        page.resolve().as_uri(),
    ]
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert shot.is_file(), proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if CONSOLE.search(line)]
    return console, image.imread(shot)[..., :3]


def near(img, hex_color, tol=0.03):
    """Number of pixels within `tol` of a colour."""
    rgb = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img - rgb).max(-1) < tol).sum())


def test_report_renders_plots_without_console_errors(results_doc, tmp_path):
    write_report(results_doc, tmp_path / "report.html")
    console, img = render(tmp_path / "report.html", tmp_path)
    assert console == []
    # thresholds sit between this page and the same page with its <svg> elements removed
    # (0.055 / 0.024 non-white, std 0.13 / 0.08, and no plot colours without the plots)
    non_white = float((img.min(-1) < 0.9).mean())
    assert non_white > 0.04, non_white
    assert float(img.std()) > 0.1
    # the plot colours themselves are on screen: lines, markers and bars were drawn
    assert near(img, "#1f77b4") > 500  # baseline (blue)
    assert near(img, "#ff7f0e") > 500  # clip-norm (orange)
    assert near(img, "#2ca02c") > 2000  # prune-unstructured (green bars)
    assert near(img, "#d62728") > 1000  # prune-structured (red bars and points)


def test_harness_sees_console_errors_and_blank_pages(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><script>console.error('boom');</script></body></html>"
    )
    console, img = render(bad, tmp_path, size=(800, 600))
    assert any("boom" in line for line in console)
    assert float((img.min(-1) < 0.9).mean()) < 0.01  # blank page: the plot check would fail
