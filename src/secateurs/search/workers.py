"""Which worker runs a trial, and whether it is still alive.

A trial records its worker as host:pid:start-time. When a search starts again, RUNNING
trials whose local worker process is gone (kill -9) are failed at once, so their grid points
run again; trials of other machines are left to Optuna's heartbeat (it fails them after its
grace period). A trial that never got its worker's identity (the worker died right after
taking it) is failed once it is IDENTITY_GRACE seconds old.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import socket
import time
import warnings
from typing import Any

IDENTITY_GRACE = 10.0  # seconds a new trial may run before its worker has signed it


def _start_time(pid: int) -> str:
    """The process start time from /proc (distinguishes a reused pid), or '' elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def worker_identity() -> str:
    """host:pid:start of this process, stored on every trial it runs."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _local_worker_dead(identity: str) -> bool:
    """True only when `identity` names a process of this host that no longer exists."""
    try:
        host, pid_s, start = identity.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(start) and _start_time(pid) not in ("", start)


def _orphaned(trial: Any, now: datetime.datetime) -> float:
    """Seconds until a RUNNING trial counts as abandoned: 0 = now, inf = it has a live owner.

    A worker writes its identity right after it takes a trial; a trial that still has none
    IDENTITY_GRACE seconds after it started lost its worker in between.
    """
    identity = trial.user_attrs.get("worker")
    if identity is not None:
        return 0.0 if _local_worker_dead(str(identity)) else math.inf
    if trial.datetime_start is None:
        return 0.0
    return max(0.0, IDENTITY_GRACE - (now - trial.datetime_start).total_seconds())


def fail_dead_trials(study: Any) -> int:
    """Mark RUNNING trials of dead local workers (and Optuna's stale ones) as failed.

    Returns how many trials of dead local workers were failed. Trials of other machines are
    left to Optuna's heartbeat, which fails them after its grace period.
    """
    import optuna
    from optuna.trial import TrialState

    n = 0
    for attempt in range(2):
        waits = []
        now = datetime.datetime.now()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            wait = _orphaned(t, now)
            if wait == 0.0:
                with contextlib.suppress(RuntimeError, ValueError):
                    study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                    n += 1
            elif math.isfinite(wait):
                waits.append(wait)
        if not waits or attempt:
            break
        time.sleep(max(waits) + 0.1)  # let a just-started worker write its identity
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return n
