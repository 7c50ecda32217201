"""Run a check in 2 real processes on torch.distributed's gloo backend (CPU, loopback)."""

from __future__ import annotations

import gc
import os
import socket
import sys
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, check: Callable[[int], None], port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        check(rank)
        dist.barrier()  # no rank tears down while the other still talks to it
    finally:
        gc.collect()  # FSDP/DDP objects in reference cycles still hold the process group
        dist.destroy_process_group()
    # The check passed. Leave without interpreter finalisation: there, gloo's C++ threads
    # can be destroyed while joinable and abort the process ("terminate called without an
    # active exception", SIGABRT, seen 1 run in many on the 2-core CI machine), which would
    # fail a check that passed. A failing check raises above and exits through mp.spawn.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_gloo(check: Callable[[int], None]) -> None:
    """Call `check(rank)` in WORLD spawned processes sharing a gloo process group.

    `check` must be a module-level function (spawned processes import it by name); a failure
    in any process fails the caller.
    """
    mp.spawn(_entry, args=(check, _free_port()), nprocs=WORLD, join=True)
