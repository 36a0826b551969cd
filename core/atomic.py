"""Atomic writes that honour the umask: temp file in the same folder, fsync, rename, fsync the folder.

`tempfile.mkstemp` creates 0600 files; a run directory on a shared file system must be readable by
colleagues, so every published file gets `0o666 & ~umask` (what `open()` would give). Secrets pass
`private=True` and stay 0600.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, IO

from core.errors import DiskFull

PRIVATE_MODE = 0o600
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (reading it means setting it: done under a lock, restored at once)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_mode() -> int:
    """The mode `open(path, "w")` would give a new file under the current umask."""
    return 0o666 & ~current_umask()


def fsync_dir(folder: str | Path) -> None:
    """Make a rename (or a new entry) in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_with(path: str | Path, write: Callable[[IO[bytes]], None], private: bool = False,
                      mode: int | None = None) -> Path:
    """Call `write(f)` on a temp file beside `path`, then publish it atomically with the umask's mode."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, PRIVATE_MODE if private else (default_mode() if mode is None else mode))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path) from None
        raise
    fsync_dir(path.parent)
    return path


def disk_full(path: Path) -> DiskFull:
    """The error for a write that found no space: the file, its file system's mount point and free bytes."""
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("/"))
    mount = folder.resolve()
    while not os.path.ismount(mount):
        mount = mount.parent
    free = shutil.disk_usage(folder).free
    return DiskFull(f"no space left on the file system at {mount} writing {path} ({free} bytes free): "
                    "free space there or write elsewhere (e.g. paths.output_root=...)")


def atomic_write_bytes(path: str | Path, data: bytes, private: bool = False, mode: int | None = None) -> Path:
    """Write bytes atomically (umask mode; 0600 with private=True)."""
    return atomic_write_with(path, lambda f: f.write(data), private=private, mode=mode)


def atomic_write_text(path: str | Path, text: str, private: bool = False, mode: int | None = None) -> Path:
    """Atomic text write (UTF-8)."""
    return atomic_write_bytes(path, text.encode(), private=private, mode=mode)


def atomic_write_json(path: str | Path, data: Any, private: bool = False) -> Path:
    """Atomic JSON write (sorted keys, indent 2, trailing newline)."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", private=private)


def atomic_copy(src: str | Path, dest: str | Path, mode: int | None = None) -> Path:
    """Copy a file atomically (the destination is complete or absent)."""
    with open(src, "rb") as source:
        return atomic_write_with(dest, lambda f: _copy_stream(source, f), mode=mode)


def _copy_stream(source: IO[bytes], dest: IO[bytes], chunk: int = 1 << 20) -> None:
    while block := source.read(chunk):
        dest.write(block)
