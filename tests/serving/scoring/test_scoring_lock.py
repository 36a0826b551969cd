"""Issue 16 point 15: a second score.py on an output another process is scoring is refused with that pid."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from serving.scoring.config import ScoreOptions
from serving.scoring.lock import OutputBusy
from serving.scoring.runner import score
from tests.conftest import REPO

HOLD = ("import sys, time; from pathlib import Path; from serving.scoring.lock import acquire_shard_lock; "
        "lock = acquire_shard_lock(Path(sys.argv[1]), 0); print('held', flush=True); time.sleep(120)")


def test_second_scorer_on_one_output_is_refused_with_the_first_ones_pid(tmp_path):
    output = tmp_path / "scores"
    output.mkdir()
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(output)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert first.stdout.readline().strip() == "held"
        opts = ScoreOptions(model=str(tmp_path / "no-model"), input=str(tmp_path / "no-input.csv"), output=str(output),
                            num_shards=1, shard_index=0)
        with pytest.raises(OutputBusy, match=rf"being scored by pid {first.pid} "):
            score(opts)  # refused before any work: the missing model is never looked at
    finally:
        first.kill()
        first.wait()
    with pytest.raises(Exception) as err:  # the lock went with the process: now the real problem surfaces
        score(opts)
    assert not isinstance(err.value, OutputBusy)
