"""The LightningModule: a plain net + cross-entropy + torchmetrics + optimizer/scheduler partials."""
from __future__ import annotations

from typing import Any, Callable

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

LABELS_KEY = "labels"


def _metrics(num_classes: int, prefix: str, validate_args: bool = True) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=num_classes, average="micro", validate_args=validate_args),
            "f1_macro": MulticlassF1Score(num_classes=num_classes, average="macro", validate_args=validate_args),
        },
        prefix=prefix,
    )


class Classifier(LightningModule):
    """Trains any net whose forward takes the batch's input keys and returns logits."""

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # validate_args=False: the per-step input checks (torch.unique over targets, ...) cost more than the update;
        # training labels were validated by the datamodule and logits come from the net
        self.train_metrics = _metrics(num_classes, "train/", validate_args=False)
        self.val_metrics = _metrics(num_classes, "val/")
        self.test_metrics = _metrics(num_classes, "test/")
        self._train_loss_sum: torch.Tensor | float = 0.0
        self._train_samples = 0

    def configure_model(self) -> None:
        """Under FSDP2 (Lightning's ModelParallelStrategy) shard the plain net's blocks, then the net, with fully_shard."""
        from lightning.pytorch.strategies import ModelParallelStrategy

        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, ModelParallelStrategy):
            from trainers.fsdp import FullyShardOptions, shard_net

            options = getattr(strategy, "fully_shard_options", FullyShardOptions())
            shard_net(self.net, self.device_mesh["data_parallel"], options)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Model inputs (pixel_values, or input_ids + attention_mask) → logits."""
        return self.net(**inputs)

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        labels = batch[LABELS_KEY]
        logits = self.net(**{k: v for k, v in batch.items() if k != LABELS_KEY})
        return self.loss_fn(logits, labels), logits, labels

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, labels = self._step(batch)
        self.train_metrics.update(logits.detach(), labels)
        # the epoch mean is a running device sum (no sync); `self.log` costs ~1 ms per call, so the step value is
        # logged only on the steps the loggers write (trainer.log_every_n_steps): same keys as on_step+on_epoch
        self._train_loss_sum = self._train_loss_sum + loss.detach() * len(labels)
        self._train_samples += len(labels)
        if self._logs_this_step():
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(labels))
        return loss

    def _logs_this_step(self) -> bool:
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        return bool(getattr(connector, "should_update_logs", True))

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum, self._train_samples = 0.0, 0

    def on_train_epoch_end(self) -> None:
        if self._train_samples:
            self.log("train/loss_epoch", self._train_loss_sum / self._train_samples, prog_bar=True, sync_dist=True)
        self.log_dict(self.train_metrics.compute(), sync_dist=True)
        self.train_metrics.reset()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.val_metrics.update(logits, labels)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(labels))

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.test_metrics.update(logits, labels)
        self.log("test/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(labels))

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.net(**{k: v for k, v in batch.items() if k != LABELS_KEY})

    def configure_optimizers(self) -> Any:
        # self.trainer.model: the wrapped module, so this stays right under FSDP/DeepSpeed
        optimizer = self.optimizer_factory(params=self.trainer.model.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.hparams.scheduler_interval},
        }
