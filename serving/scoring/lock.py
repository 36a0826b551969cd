"""One scoring process per output task share: a second `score.py` on the same output is refused with the pid.

Two jobs on one output both did all the work (and raced on every chunk). Each task share (shard) of an output
takes an exclusive flock on `output/.lock-shard-SSSSS` for as long as it runs; the kernel releases it when the
process ends, so a killed job never leaves a stale lock. Array tasks of one job hold different shards.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from serving.scoring.config import ScoringError


class OutputBusy(ScoringError):
    """Another live process is scoring this share of the output."""


def acquire_shard_lock(output: Path, shard_index: int) -> IO[str]:
    """Hold the output's lock for this shard (keep the handle open while scoring); OutputBusy names the holder."""
    path = Path(output) / f".lock-shard-{shard_index:05d}"
    handle = open(path, "a+")  # noqa: SIM115 - held open for the run: closing it releases the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise OutputBusy(f"output={output} is being scored by pid {holder} (shard {shard_index}): wait for it to "
                         "finish (a rerun then resumes its chunks) or pass another output=") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
