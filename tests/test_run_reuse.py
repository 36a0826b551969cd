"""Issue 16 point 6: a run directory holds one run; a re-used run_id resumes or overwrites, trials stay apart."""
from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig

from core.errors import ConfigError
from core.rundir import RunDir
from trainers.compose import compose_train
from trainers.run import train
from trainers.run_claim import distinct_trial_run_id

TINY = ["+experiment=digits_cnn", "run_id=fixed", "trainer.max_steps=1", "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0", "test_after_fit=false", "callbacks.progress_bar=null", "evaluate=false",
        "trainer.accelerator=cpu", "trainer.enable_model_summary=false"]


def test_a_reused_run_id_is_refused_unless_resumed_or_overwritten(tmp_path):
    train(compose_train([*TINY, "model.optimizer.lr=0.001"], tmp_path))
    run = RunDir(tmp_path / "digits_cnn" / "fixed")
    first_config = run.config_path.read_text()
    with pytest.raises(ConfigError, match=r"already holds a run .*resume=auto .*overwrite=true"):
        train(compose_train([*TINY, "model.optimizer.lr=0.003"], tmp_path))
    assert run.config_path.read_text() == first_config  # refused before any work: nothing of the second run
    assert len(list(run.tb_dir.rglob("events.out.tfevents.*"))) == 1

    train(compose_train([*TINY, "model.optimizer.lr=0.003", "overwrite=true"], tmp_path))
    assert "lr: 0.003" in run.config_path.read_text()
    assert len(list(run.tb_dir.rglob("events.out.tfevents.*"))) == 1  # the earlier run's events went with it


@pytest.mark.parametrize("run_id, num, expected", [("fixed", 1, "fixed_1"), ("2026-12-01_10-00-00_1", 1,
                                                                             "2026-12-01_10-00-00_1")])
def test_multirun_trials_with_a_fixed_run_id_get_distinct_directories(tmp_path, run_id, num, expected):
    cfg = compose_train(["+experiment=digits_cnn", f"run_id={run_id}", "hydra.mode=MULTIRUN",
                         f"hydra.job.num={num}"], tmp_path)
    distinct_trial_run_id(cfg)
    assert cfg.run_id == expected
    assert cfg.paths.run_dir.endswith(f"/digits_cnn/{expected}")
    HydraConfig.instance().cfg = None
