"""The test Slurm cluster (scripts/services.sh up): a session check, fresh output folders, job helpers."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require_service, run_entry
from tests.exported_runs import TINY_LM

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED"}
# a tiny deterministic 2-rank DDP run of digits_cnn on CPUs (gloo), one task on each fake node
TINY_DDP = ["+experiment=digits_cnn", "strategy=ddp", "trainer.accelerator=cpu", "callbacks.progress_bar=null",
            "callbacks.early_stopping=null", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
            "slurm.nodes=2", "slurm.cpus_per_task=1", "slurm.time=00:10:00"]
# the same for lm_llama_tiny: 2 Llama layers (tests/exported_runs.py TINY_LM), seq_len 32, 8 windows per rank a step
# (datamodule.data_dir and trainer.max_steps are the test's)
TINY_LM_DDP = ["+experiment=lm_llama_tiny", "strategy=ddp", "trainer.accelerator=cpu", "callbacks.progress_bar=null",
               "datamodule.seq_len=32", "datamodule.batch_size=8", "datamodule.val_fraction=0.1",
               "datamodule.test_fraction=0.1", "trainer.max_time=null", "trainer.val_check_interval=20",
               "trainer.limit_val_batches=1", "model.generation.every_n_validations=0", "model.scheduler.warmup_steps=5",
               *[f"model.net.config.{key}={value}" for key, value in TINY_LM.items()],
               "slurm.nodes=2", "slurm.cpus_per_task=1", "slurm.time=00:10:00"]


def cluster_up() -> bool:
    """`sinfo` answers and lists nodes."""
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0 and bool(proc.stdout.strip())


@pytest.fixture(scope="session")
def slurm_root(tmp_path_factory) -> Path:
    """Asserts the cluster is up; a folder fresh for this session (job ids restart at 1 after `up`)."""
    require_service(cluster_up(), "no Slurm cluster: run `bash scripts/services.sh up` (as root)")
    return tmp_path_factory.mktemp("slurm")


def submit_train(*overrides: str) -> list[str]:
    """`train.py ... launcher=slurm`: the job ids it printed."""
    proc = run_entry("train.py", *overrides, "launcher=slurm", timeout=300)
    ids = re.findall(r"Submitted batch job (\d+)", proc.stdout)
    assert ids, proc.stdout[-2000:] + proc.stderr[-2000:]
    return ids


def sacct(job_id: str, fields: str = "State,ExitCode") -> list[str]:
    """The job's allocation line from accounting ('' while unknown)."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", fields], capture_output=True,
                         text=True, timeout=30).stdout.strip().splitlines()
    return out[-1].split("|") if out else []


def wait_for_job(job_id: str, timeout: float, log: Path | None = None) -> list[str]:
    """Poll accounting until the job reaches a final state; returns [State, ExitCode]."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        row = sacct(job_id)
        if row and row[0].split()[0] in FINAL_STATES:
            return row
        time.sleep(1)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    subprocess.run(["scancel", job_id], check=False)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {sacct(job_id)}\n{tail}")


def wait_for(predicate, timeout: float, what: str) -> None:
    """Poll a condition (a file appearing, ...)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
