"""Test driver: the process sends itself a real signal at a chosen step, as a scheduler would (no mocking)."""
from __future__ import annotations

import os
import signal
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class SignalAtStep(Callback):
    """os.kill(own pid, SIG) when the given optimizer step starts (only in the attempt that has not passed it)."""

    def __init__(self, step: int, signal_name: str = "SIGTERM", rank: int = 0) -> None:
        self.step = step
        self.signal = signal.Signals[signal_name]
        self.rank = rank

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            os.kill(os.getpid(), self.signal)  # arrives mid-step: the step must finish before anything happens
