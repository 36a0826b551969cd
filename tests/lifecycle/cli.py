"""Run `python -m serving ...` in a fresh interpreter, as an operator would."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def serving_cli(*args: str, env: dict | None = None, timeout: int = 300, check: bool = True
                ) -> subprocess.CompletedProcess:
    """The CLI's result; raises with its output when check and it failed."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "serving", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"serving {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc
