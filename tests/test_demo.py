"""`make demo` (scripts/demo.py): train → export with parity → package → TorchServe → predict → stop."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import REPO, require_service


@pytest.mark.slow
@pytest.mark.torchserve
def test_demo_runs_end_to_end_and_twice(tmp_path):
    require_service(shutil.which("java") is not None, "Java 17 is needed for TorchServe")
    serve_root = tempfile.mkdtemp(prefix="sy-demo-")  # short: TorchServe's worker socket paths must fit AF_UNIX
    env = {**os.environ, "PYTHONPATH": str(REPO), "SHIPYARD_OUTPUT_ROOT": str(tmp_path / "out"),
           "SHIPYARD_SERVE_ROOT": serve_root, "SHIPYARD_EVALUATE": "false"}
    for _ in range(2):  # a second demo must not trip over the first one's served archive
        proc = subprocess.run([sys.executable, "scripts/demo.py"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert "10/10 sample digits right" in proc.stdout and "TorchServe stopped" in proc.stdout
    assert len(list((tmp_path / "out" / "digits_cnn").iterdir())) == 2
    java = subprocess.run(["pgrep", "-f", serve_root], capture_output=True, text=True)
    assert java.stdout.strip() == "", "a demo TorchServe is still running"
    shutil.rmtree(serve_root, ignore_errors=True)
