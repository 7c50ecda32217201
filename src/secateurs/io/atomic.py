"""Atomic file output: write to a temporary file beside the target, then rename.

An interrupted run therefore leaves either the previous good file or the new one, never a
half-written file. Output gets the mode ``open()`` would give (0666 less the umask).

Nothing is left behind either: `write_bytes_atomic` writes into an unnamed file (Linux
``O_TMPFILE``) that the kernel drops if the process dies, and names it only when complete.
Where that is not available, and for `atomic_path` (whose caller writes the file itself), the
temporary file is named ``.NAME.PID-XXXX.tmp``; a process killed outright (kill -9) cannot
remove it, so the next write to the same target removes the temporaries of dead processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove ``.NAME.PID-XXXX.tmp`` files beside `target` left by processes that died."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)-[^/]*\.tmp$")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            m = pattern.match(entry.name)
            if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `path`.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp makes the file owner-only (0600); give it the mode open() would give.
        os.chmod(tmp_path, 0o666 & ~_umask())
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # a writer may have replaced the file
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000


def _link_fd(fd: int, name: Path) -> None:
    """Give the unnamed file `fd` the name `name`.

    ``linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH)`` first: some kernels and sandboxes refuse
    the ``/proc/self/fd`` route with EXDEV (seen on this project's CI machine, which made every
    save fall back to a named temporary). Then the ``/proc/self/fd`` link, which needs no
    privilege where it works.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        linkat = libc.linkat
    except (OSError, AttributeError):
        linkat = None
    if linkat is not None and linkat(fd, b"", _AT_FDCWD, os.fsencode(name), _AT_EMPTY_PATH) == 0:
        return
    os.link(f"/proc/self/fd/{fd}", name, follow_symlinks=True)


def _write_unnamed(target: Path, data: bytes) -> bool:
    """Write `data` into an O_TMPFILE file and name it `target`; False if unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return False
    try:
        fd = os.open(target.parent, flag | os.O_WRONLY, 0o666)  # the umask applies
    except OSError:
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        name = target.parent / f"{_temp_prefix(target)}{os.urandom(4).hex()}.tmp"
        _link_fd(fd, name)
    except OSError:
        os.close(fd)
        return False
    os.close(fd)
    try:
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            name.unlink()
        raise
    return True


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _write_unnamed(target, data):
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
    return target
