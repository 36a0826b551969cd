"""Issue 16 point 1: a pretrained net fine-tunes in train mode (dropout on) at every epoch start."""
from __future__ import annotations

import pytest
from hydra.utils import instantiate
from lightning.pytorch import Callback, Trainer

from trainers.compose import compose_train


class ModeProbe(Callback):
    """Records the modules that are in eval mode at the start of training and of every epoch."""

    def __init__(self) -> None:
        self.in_eval: list[list[str]] = []

    def _probe(self, module) -> None:
        self.in_eval.append([name for name, m in module.named_modules() if not m.training])

    def on_train_start(self, trainer, pl_module) -> None:
        self._probe(pl_module)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._probe(pl_module)


@pytest.mark.slow  # ~20 s idle (MiniLM load + 2 tiny epochs)
def test_pretrained_minilm_trains_in_train_mode(tmp_path):
    cfg = compose_train(["+experiment=text_minilm"], tmp_path)
    dm = instantiate(cfg.datamodule)
    dm.setup("fit")
    cfg.model.num_classes = dm.num_classes
    probe = ModeProbe()
    trainer = Trainer(max_epochs=2, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=1,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[probe], default_root_dir=tmp_path)
    trainer.fit(instantiate(cfg.model), datamodule=dm)
    assert len(probe.in_eval) == 3 and probe.in_eval == [[], [], []], probe.in_eval[0][:5]
