"""Wall-clock time of `secateurs demo` and `secateurs compare`, run as a user runs them.

    flock /tmp/secateurs-bench.lock python benchmarks/demo_bench.py --demo
    flock /tmp/secateurs-bench.lock python benchmarks/demo_bench.py --compare --seeds 3
    python benchmarks/demo_bench.py --compare --models mlp,lstm --seeds 1   # a smaller run

Each command runs in a fresh process (imports included) with its output in a temporary
folder; the script prints a Markdown table with the stage times the command recorded and,
with --json, writes the figures to a file. Goals: demo <= 3 min, compare (all models, 3
seeds) <= 20 min, on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-c", "from secateurs.cli import main; main()"]


def _run(args: list[str], threads: int | None) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): secateurs {' '.join(args)}")
    return seconds, proc


def _outdir(keep: Path | None, name: str) -> Any:
    """A temporary folder, or `keep/name` (kept) when --keep is given."""
    if keep is None:
        return tempfile.TemporaryDirectory()
    (keep / name).mkdir(parents=True, exist_ok=True)
    return _Kept(keep / name)


class _Kept:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> str:
        return str(self.path)

    def __exit__(self, *exc: object) -> None:
        return None


def bench_demo(threads: int | None, keep: Path | None = None) -> dict[str, Any]:
    with _outdir(keep, "demo") as tmp:
        args = ["demo", "--out", tmp, "--quiet"]
        if threads is not None:
            args += ["--threads", str(threads)]
        seconds, _ = _run(args, threads)
        res = json.loads((Path(tmp) / "results.json").read_text())
    cfg = res["config"]
    return {
        "command": "secateurs " + " ".join(a if a != tmp else "DIR" for a in args),
        "wall_seconds": round(seconds, 1),
        "stage_seconds": cfg.get("seconds", {}),
        "chosen_sparsity": cfg.get("chosen_sparsity"),
        "runs": {
            r["variant"]: {
                "accuracy": r["value"],
                "nonzeros": r["nonzeros"],
                "params": r["params"],
                "file_bytes": r["file_bytes"],
                "latency_ms": r["latency_ms"],
            }
            for r in res["runs"]
        },
    }


def bench_compare(
    models: str | None, seeds: int, threads: int | None, keep: Path | None = None
) -> dict[str, Any]:
    with _outdir(keep, "compare") as tmp:
        args = ["compare", "--seeds", str(seeds), "--out", tmp, "--quiet"]
        if models:
            args += ["--models", models]
        if threads is not None:
            args += ["--threads", str(threads)]
        seconds, _ = _run(args, threads)
        res = json.loads((Path(tmp) / "results.json").read_text())
    per_model: dict[str, float] = {}
    for r in res["runs"]:
        per_model[r["model"]] = per_model.get(r["model"], 0.0) + float(r.get("train_seconds") or 0)
    return {
        "command": "secateurs " + " ".join(a if a != tmp else "DIR" for a in args),
        "wall_seconds": round(seconds, 1),
        "training_seconds_per_model": {k: round(v, 1) for k, v in per_model.items()},
        "runs": len(res["runs"]),
        "failed_runs": sum(1 for r in res["runs"] if r.get("error")),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", action="store_true", help="time `secateurs demo`")
    p.add_argument("--compare", action="store_true", help="time `secateurs compare`")
    p.add_argument("--models", default=None, help="models for compare (default: all)")
    p.add_argument("--seeds", type=int, default=3, help="seeds for compare (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--keep", type=Path, default=None, help="keep the commands' outputs here")
    a = p.parse_args()
    if not (a.demo or a.compare):
        p.error("choose --demo and/or --compare")
    out: dict[str, Any] = {
        "machine": {
            "cpu_cores": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
        }
    }
    if a.demo:
        out["demo"] = bench_demo(a.threads, a.keep)
    if a.compare:
        out["compare"] = bench_compare(a.models, a.seeds, a.threads, a.keep)
    print(
        f"cores: {os.cpu_count()}, load average at start: {out['machine']['load_average_at_start']}"
    )
    print("\n| command | wall time | goal |\n|---|---:|---:|")
    if a.demo:
        print(f"| `{out['demo']['command']}` | {out['demo']['wall_seconds']:.0f} s | <= 180 s |")
    if a.compare:
        goal = "<= 1200 s" if not a.models and a.seeds == 3 else "(smaller run)"
        print(
            f"| `{out['compare']['command']}` | {out['compare']['wall_seconds']:.0f} s | {goal} |"
        )
    if a.demo:
        stages = out["demo"]["stage_seconds"]
        print("\ndemo stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    if a.compare:
        per = out["compare"]["training_seconds_per_model"]
        print(
            "compare training time per model (s): " + ", ".join(f"{k} {v}" for k, v in per.items())
        )
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
