"""`train.py -m hparams_search=digits_optuna`: an Optuna sweep, each trial its own process, best result written."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import run_entry


@pytest.mark.slow
def test_optuna_sweep_of_three_trials_writes_the_best_params(tmp_path):
    sweep = tmp_path / "sweep"
    run_entry("train.py", "-m", "hparams_search=digits_optuna", f"paths.output_root={tmp_path}",
              f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=3",
              "trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=4",
              "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", timeout=480)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"model.optimizer.lr", "model.net.dropout", "datamodule.batch_size"}
    # each trial was its own process with its own run directory; the best value is the best trial's val/acc
    run_dirs = [p for p in (tmp_path / "digits_optuna").iterdir() if (p / "metrics.json").exists()]
    assert len(run_dirs) == 3
    pids = {json.loads((d / "run.json").read_text())["attempts"][0]["pid"] for d in run_dirs}
    assert len(pids) == 3
    values = [json.loads((d / "metrics.json").read_text())["val/acc"] for d in run_dirs]
    assert results["best_value"] == pytest.approx(max(values))
    best_lrs = [yaml.safe_load((d / "config.yaml").read_text())["model"]["optimizer"]["lr"] for d in run_dirs
                if json.loads((d / "metrics.json").read_text())["val/acc"] == max(values)]
    assert results["best_params"]["model.optimizer.lr"] in best_lrs


@pytest.mark.slow
def test_optuna_sweep_refuses_launcher_slurm(tmp_path):
    proc = run_entry("train.py", "-m", "hparams_search=digits_optuna", "launcher=slurm", "hydra.sweeper.n_trials=1",
                     "hydra/launcher=basic", f"paths.output_root={tmp_path}", f"hydra.sweep.dir={tmp_path}/s",
                     check=False)
    assert proc.returncode != 0
    assert "as Slurm jobs with hydra/launcher=submitit_slurm" in proc.stderr
