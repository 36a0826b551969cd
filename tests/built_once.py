"""Session artefacts built once for the whole test session, across pytest-xdist workers.

A session fixture runs once per worker process: with `make test`'s two workers, every trained run a fixture
builds (minutes of train.py + export.py) would be built twice. `built_once` keeps the folder in the basetemp
both workers share and builds it under a file lock; the other worker waits for it, then reads the same files.
Only for artefacts the tests treat as read-only (copy them before changing anything).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest
from filelock import FileLock

BUILT = ".built"  # written last: a folder without it is a failed or interrupted build, built again


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this session sees (basetemp's parent under xdist, basetemp without it)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built_once"


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder `name`, filled by `build(folder)` the first time any worker asks for it this session."""
    root = shared_root(tmp_path_factory)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (folder / BUILT).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / BUILT).touch()
    return folder
