"""Issue 16 point 10: ckpt_path= a checkpoint of another experiment is refused naming that experiment."""
from __future__ import annotations

import pytest
import torch

from core.rundir import RunDir
from trainers.checkpoints import CheckpointError
from trainers.compose import compose_train
from trainers.run import train


def test_a_checkpoint_of_another_experiment_is_refused_naming_it(tmp_path):
    other = RunDir(tmp_path / "text_transformer" / "t1")
    other.write_config("name: text_transformer\nrun_id: t1\n")
    other.checkpoints_dir.mkdir()
    ckpt = other.checkpoints_dir / "epoch000-step000001.ckpt"
    torch.save({"state_dict": {"net.embed.weight": torch.zeros(8, 4), "net.head.weight": torch.zeros(3, 4)}}, ckpt)
    cfg = compose_train(["+experiment=digits_cnn", "run_id=from_other", f"ckpt_path={ckpt}", "evaluate=false",
                         "trainer.accelerator=cpu", "callbacks.progress_bar=null"], tmp_path)
    with pytest.raises(CheckpointError, match=r"does not fit this model .*experiment 'text_transformer'"):
        train(cfg)
    assert not (tmp_path / "digits_cnn" / "from_other" / "checkpoints").exists()  # refused before fit
