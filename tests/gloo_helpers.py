"""Run a check in 2 real processes on torch.distributed's gloo backend (CPU, loopback)."""

from __future__ import annotations

import os
import socket
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
    finally:
        dist.destroy_process_group()


def run_gloo(check: Callable[[int], None]) -> None:
    """Call `check(rank)` in WORLD spawned processes sharing a gloo process group.

    `check` must be a module-level function (spawned processes import it by name); a failure
    in any process fails the caller.
    """
    mp.spawn(_entry, args=(check, _free_port()), nprocs=WORLD, join=True)
