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


class RunningTrainMetrics:
    """Training accuracy (micro) and macro F1 from a confusion count kept on the device: one bincount a step.

    A torchmetrics MetricCollection of the same two metrics cost ~2 ms a step on the shared 2-core CPU
    (update wrappers, compute groups, two stat-score passes): more than the rest of Shipyard's per-step
    machinery together (benchmarks/results/PROFILE.md). Same values as torchmetrics': the macro average runs
    over the classes that occur in targets or predictions; under DDP the counts are summed over ranks.
    """

    def __init__(self, num_classes: int, prefix: str) -> None:
        self.num_classes = num_classes
        self.prefix = prefix
        self._counts: torch.Tensor | None = None

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch's (target, predicted) pairs to the confusion count."""
        cells = targets.reshape(-1) * self.num_classes + outputs.argmax(-1).reshape(-1)
        counts = torch.bincount(cells, minlength=self.num_classes ** 2)
        self._counts = counts if self._counts is None else self._counts + counts

    def compute(self) -> dict[str, torch.Tensor]:
        """{prefix+"acc", prefix+"f1_macro"} over everything since the last reset (an empty epoch: zeros)."""
        counts = self._counts if self._counts is not None else torch.zeros(self.num_classes ** 2, dtype=torch.long)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            counts = counts.clone()
            torch.distributed.all_reduce(counts)
        matrix = counts.view(self.num_classes, self.num_classes).double()
        tp = matrix.diagonal()
        denominator = 2 * tp + (matrix.sum(0) - tp) + (matrix.sum(1) - tp)  # 2tp + fp + fn
        present = denominator > 0
        f1 = torch.where(present, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
        acc = tp.sum() / matrix.sum().clamp(min=1)
        macro = f1[present].mean() if bool(present.any()) else torch.zeros((), dtype=torch.double)
        return {f"{self.prefix}acc": acc.float(), f"{self.prefix}f1_macro": macro.float()}

    def reset(self) -> None:
        """Start a new epoch's count."""
        self._counts = None


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

    def make_metrics(self, prefix: str) -> MetricCollection | RunningTrainMetrics:
        # training: a running confusion count (the same two values at a fraction of torchmetrics' per-step
        # cost); validation and test keep torchmetrics with its input checks
        if prefix == "train/":
            return RunningTrainMetrics(self.num_classes, prefix)
        return _metrics(self.num_classes, prefix)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the logits against the labels (with the configured label smoothing)."""
        return self.loss_fn(outputs, targets)
