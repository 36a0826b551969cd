"""`train.py -m hydra/launcher=submitit_slurm`: every trial of a sweep is its own Slurm job."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import run_entry
from tests.slurm.conftest import wait_for_job

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_submitit_multirun_runs_each_trial_as_its_own_job(slurm_root):
    out = slurm_root / "submitit"
    sweep = out / "sweep"
    proc = run_entry("train.py", "-m", "hydra/launcher=submitit_slurm", "+experiment=digits_cnn",
                     f"paths.output_root={out}", f"hydra.sweep.dir={sweep}", "trainer.accelerator=cpu",
                     "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
                     "trainer.limit_test_batches=2", "callbacks.progress_bar=null", "optimized_metric=val/acc",
                     "model.optimizer.lr=0.001,0.003", timeout=480)
    run_dirs = sorted(p for p in (out / "digits_cnn").iterdir() if p.name.startswith("slurm-"))
    assert len(run_dirs) == 2, (proc.stdout[-2000:], proc.stderr[-3000:])
    job_ids, lrs = set(), set()
    for run_dir in run_dirs:
        info = json.loads((run_dir / "run.json").read_text())
        (attempt,) = info["attempts"]
        job_ids.add(attempt["slurm_job_id"])  # an array task's own job id
        assert run_dir.name == f"slurm-{info['run_id'].removeprefix('slurm-')}"
        assert json.loads((run_dir / "metrics.json").read_text())["val/acc"] > 0
        lrs.add(yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["optimizer"]["lr"])
    assert len(job_ids) == 2 and lrs == {0.001, 0.003}
    for job_id in job_ids:  # submitit returns once the result is written; the job then ends
        assert wait_for_job(job_id, 60)[0] == "COMPLETED"
    # submitit kept each job's pickled result: the objective train.py's main returned
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2
