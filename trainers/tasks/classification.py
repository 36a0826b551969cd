"""The classification task: a net that returns logits, cross-entropy, accuracy and macro F1 (images and text)."""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from trainers.tasks.base import TaskModule

LABELS_KEY = "labels"


def _metrics(num_classes: int, prefix: str, validate_args: bool = True) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=num_classes, average="micro", validate_args=validate_args),
            "f1_macro": MulticlassF1Score(num_classes=num_classes, average="macro", validate_args=validate_args),
        },
        prefix=prefix,
    )


class Classifier(TaskModule):
    """Trains any net whose forward takes the batch's input keys and returns logits."""

    task: ClassVar[str] = "classification"
    target_keys: ClassVar[tuple[str, ...]] = (LABELS_KEY,)
    monitor: ClassVar[str] = "val/acc"
    monitor_mode: ClassVar[str] = "max"
    throughput_unit: ClassVar[str] = "samples"

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_interval)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.num_classes = num_classes
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.init_metrics()

    @classmethod
    def model_config(cls, datamodule: Any) -> dict[str, Any]:
        """The head's size comes from the data: model.num_classes = the datamodule's label count."""
        return {"num_classes": datamodule.num_classes}

    @classmethod
    def run_info(cls, datamodule: Any) -> dict[str, Any]:
        """run.json's num_classes and labels (export, serving and evaluation name classes with them)."""
        return {"num_classes": datamodule.num_classes, "labels": datamodule.labels}

    def make_metrics(self, prefix: str) -> MetricCollection:
        # validate_args=False for training: the per-step input checks (torch.unique over targets, ...) cost more
        # than the update; training labels were validated by the datamodule and logits come from the net
        return _metrics(self.num_classes, prefix, validate_args=prefix != "train/")

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the logits against the labels (with the configured label smoothing)."""
        return self.loss_fn(outputs, targets)
