"""A finished train() destroys its process group: a rank that exits with gloo's worker threads alive can abort at
interpreter shutdown ("terminate called without an active exception"), which failed a finished 2-node Slurm step."""
from __future__ import annotations

import torch.distributed as dist

from trainers.compose import compose_train
from trainers.run import train


def test_a_finished_ddp_run_leaves_no_process_group_and_a_second_run_starts_its_own(tmp_path):
    overrides = ["+experiment=digits_cnn", "strategy=ddp", "trainer.accelerator=cpu", "trainer.devices=1",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                 "trainer.limit_test_batches=1", "callbacks.progress_bar=null", "evaluate=false"]
    for run_id in ("first", "second"):  # as an in-process multirun: the second run initializes a new group
        summary = train(compose_train([*overrides, f"run_id={run_id}"], tmp_path))
        assert summary["metrics"] and not dist.is_initialized()
