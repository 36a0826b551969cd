"""Issue 16 point 3: a resume with a longer horizon trains on a rebuilt schedule; other changed keys are refused."""
from __future__ import annotations

import json

import pytest
import torch

from core.errors import ConfigError
from core.rundir import RunDir
from trainers.compose import compose_train
from trainers.run import train

TINY = ["+experiment=digits_cnn", "run_id=grow", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0", "test_after_fit=false", "callbacks.progress_bar=null", "evaluate=false",
        "callbacks.early_stopping=null", "trainer.accelerator=cpu", "trainer.enable_model_summary=false"]


def _net(path):
    return {k: v for k, v in torch.load(path, map_location="cpu", weights_only=False)["state_dict"].items()
            if k.startswith("net.") and "running_" not in k}  # weights, not batch-norm statistics


def test_a_longer_schedule_on_resume_trains_the_new_epoch_and_keeps_the_config_history(tmp_path):
    train(compose_train([*TINY, "trainer.max_epochs=2"], tmp_path))
    run = RunDir(tmp_path / "digits_cnn" / "grow")
    before = _net(run.last_checkpoint_path)
    first_config = run.config_path.read_text()

    with pytest.raises(ConfigError, match=r"cannot change on resume: model\.optimizer\.lr: 0\.003 -> 0\.001"):
        train(compose_train([*TINY, "trainer.max_epochs=3", "model.optimizer.lr=0.001", "resume=auto"], tmp_path))
    assert run.config_path.read_text() == first_config

    train(compose_train([*TINY, "trainer.max_epochs=3", "resume=auto"], tmp_path))
    after = _net(run.last_checkpoint_path)
    # the restored CosineAnnealingLR(T_max=2) is at lr 0 after 2 epochs: epoch 3 changed nothing before the fix
    assert max(float((after[k] - before[k]).abs().max()) for k in before if before[k].is_floating_point()) > 1e-4
    assert "max_epochs: 3" in run.config_path.read_text() and "T_max: 3" in run.config_path.read_text()
    assert (run.config_history_dir / "00-config.yaml").read_text() == first_config
    changes = json.loads((run.config_history_dir / "00-changes.json").read_text())["changes"]
    assert changes == {"model.scheduler.T_max": {"old": 2, "new": 3}, "trainer.max_epochs": {"old": 2, "new": 3}}
