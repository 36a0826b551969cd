"""Shared test helpers: run entry points as real subprocesses, require services (never skipped under CI)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.resolvers import register

# session fixtures shared by serving, scoring and lifecycle tests (defined once so each trains once), and how
# `make test`'s xdist workers split the files
pytest_plugins = ["tests.exported_runs", "tests.xdist_scheduling"]

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))

register()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# train.py evaluates every run (evaluate.py) by default; tests opt in with evaluate=true where they check it
os.environ.setdefault("SHIPYARD_EVALUATE", "false")


def run_entry(script: str, *args: str, cwd: Path = REPO, env: dict | None = None, timeout: int = 600,
              check: bool = True) -> subprocess.CompletedProcess:
    """Run an entry point (train.py, ...) in a fresh interpreter, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def require_service(available: bool, reason: str) -> None:
    """Skip when a machine cannot provide a service, but never under CI=true: there it is a failure."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and a required service is missing: {reason}")
    pytest.skip(reason)
