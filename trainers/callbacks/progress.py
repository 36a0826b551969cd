"""The console during fit: a one-line progress bar with 1-based epochs, and one summary line per epoch."""
from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)

BAR_METRICS = {"train/loss_step": "loss"}  # the bar shows these (renamed); everything else goes to the summary


def epoch_label(epoch: int, max_epochs: int | None) -> str:
    """'epoch 2/3' for Lightning's 0-based epoch 1 of max_epochs=3 (people count from 1)."""
    shown = f"{epoch + 1}"
    return f"{shown}/{max_epochs}" if max_epochs not in (None, -1) else shown


class ProgressBar(RichProgressBar):
    """Rich's bar, with 1-based "Epoch 2/2" and only the step loss: all metrics on one bar wrapped over 4 lines."""

    def __init__(self, refresh_rate: int = 4, **kwargs: Any) -> None:
        # redraws per second: Lightning's default of 100 keeps a render thread taking the GIL every 10 ms, which
        # slowed a 17 ms digits step by ~20 % (benchmarks/results/PROFILE.md); 4 is rich's own default
        super().__init__(refresh_rate=refresh_rate, **kwargs)

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {epoch_label(current_epoch, self.trainer.max_epochs)}"
        if len(self.validation_description) > len(description):
            description = f"{description:{len(self.validation_description)}}"  # no flicker against "Validation"
        return description

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """The step loss only (the epoch's metrics are EpochSummary's one line)."""
        items = super().get_metrics(trainer, pl_module)
        return {short: items[key] for key, short in BAR_METRICS.items() if key in items}


def summary_line(epoch: int, max_epochs: int | None, metrics: dict[str, Any]) -> str:
    """'epoch 1/2: train/loss 0.9180 | val/loss 0.1450 | val/acc 0.9660' (step values and perf/ left out)."""
    shown = {k.removesuffix("_epoch"): float(v) for k, v in sorted(metrics.items())
             if k.startswith(("train/", "val/")) and not k.endswith("_step")}
    body = " | ".join(f"{k} {v:.4f}" for k, v in shown.items())
    return f"epoch {epoch_label(epoch, max_epochs)}: {body}" if body else f"epoch {epoch_label(epoch, max_epochs)} done"


class EpochSummary(Callback):
    """One INFO line per finished training epoch with its train and validation metrics."""

    def __init__(self) -> None:
        self._pending: int | None = None  # the epoch whose metrics are logged at the next boundary

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # the task logs train/loss_epoch in its own on_train_epoch_end, which runs after the callbacks' hook
        self._pending = trainer.current_epoch

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer)

    @rank_zero_only
    def _flush(self, trainer: Trainer) -> None:
        if self._pending is None or trainer.sanity_checking:
            return
        log.info(summary_line(self._pending, trainer.max_epochs, trainer.callback_metrics))
        self._pending = None
