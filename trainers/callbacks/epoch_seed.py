"""Reseed every RNG at each epoch start so a run resumed at an epoch boundary replays exactly."""
from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.fabric.utilities.seed import seed_everything


class EpochSeed(Callback):
    """Dropout and augmentation draw from seed + epoch (+ rank), not from whatever ran before."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        seed_everything(self.seed + 1000 * trainer.current_epoch + trainer.global_rank, workers=True, verbose=False)
