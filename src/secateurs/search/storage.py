"""Where studies live: an SQLite file (embedded) or a PostgreSQL server (many machines).

`open_storage` checks the URL and the connection up front so that a typo or an unreachable
server is one clear error (a `StorageError`, which the CLI maps to exit code 2), and turns
on Optuna's heartbeat so that the trials of a worker that died (kill -9, a lost machine)
are marked failed after `grace_period` seconds instead of staying RUNNING forever.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_STORAGE = "sqlite:///sweeps.db"
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60


class StorageError(ValueError):
    """The study storage cannot be used (bad URL, unreachable server, not a database)."""


def redact(url: str) -> str:
    """The URL with any password replaced by ***, safe to print."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several local workers share the file: wait for the lock rather than fail.
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    return {}


def normalize_url(url: str) -> str:
    """Pick the installed PostgreSQL driver for a plain postgresql:// URL.

    SQLAlchemy 2.1 maps postgresql:// to psycopg 3; the `search` extra installs
    psycopg2-binary, so use it when psycopg 3 is absent. postgres:// is accepted too.
    """
    import importlib.util

    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    plain = url.startswith("postgresql://")
    if (
        plain
        and importlib.util.find_spec("psycopg") is None
        and importlib.util.find_spec("psycopg2")
    ):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _check_url(url: str) -> None:
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            f"storage URL {url!r} must look like sqlite:///path.db or "
            "postgresql://user:password@host:port/database"
        )
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgres", "mysql"):
        raise StorageError(
            f"storage URL scheme {scheme!r} is not supported; use sqlite or postgresql"
        )
    if scheme == "sqlite":
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:":
            raise StorageError("an SQLite storage needs a file path: sqlite:///path/to/study.db")
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def open_storage(
    url: str,
    *,
    heartbeat: bool = True,
    stale_trial_callback: Callable[[Any, Any], None] | None = None,
) -> Any:
    """An Optuna RDBStorage for `url`, connected and checked; raises StorageError otherwise."""
    import optuna
    import sqlalchemy.exc

    _check_url(url)
    url = normalize_url(url)
    kwargs: dict[str, Any] = {"engine_kwargs": _engine_kwargs(url)}
    if heartbeat:
        kwargs.update(heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD)
        if stale_trial_callback is not None:
            kwargs["heartbeat_stale_trial_callback"] = stale_trial_callback
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError, RuntimeError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise StorageError(f"cannot open study storage {redact(url)}: {reason}") from None
