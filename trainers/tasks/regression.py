"""The regression task: a net that predicts the standardised target; MSE or Huber loss; RMSE, MAE, R² in target units."""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from trainers.tasks.base import TaskModule

TARGET_KEY = "target"
LOSSES = ("mse", "huber")


class Regressor(TaskModule):
    """Trains a net with one output on (y - mean) / std; metrics see predictions back in the target's units."""

    task: ClassVar[str] = "regression"
    target_keys: ClassVar[tuple[str, ...]] = (TARGET_KEY,)
    monitor: ClassVar[str] = "val/rmse"
    monitor_mode: ClassVar[str] = "min"
    throughput_unit: ClassVar[str] = "samples"

    def __init__(self, net: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None, scheduler_interval: str = "epoch",
                 loss: str = "mse", huber_delta: float = 1.0, target_mean: float = 0.0, target_std: float = 1.0,
                 num_classes: int = 1) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_interval)
        if loss not in LOSSES:
            raise ValueError(f"model.loss={loss!r}: use one of {LOSSES}")
        if num_classes != 1:
            raise ValueError(f"regression predicts one number per row; the net has num_classes={num_classes}")
        if not target_std > 0:
            raise ValueError(f"model.target_std must be > 0, got {target_std}")
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.loss_fn = nn.MSELoss() if loss == "mse" else nn.HuberLoss(delta=huber_delta)
        # the target scaling fitted on the training split travels with the weights (checkpoints, evaluation)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))
        self.init_metrics()

    @classmethod
    def model_config(cls, datamodule: Any) -> dict[str, Any]:
        """The target's training-split mean/std and one output (the net's num_classes)."""
        spec = datamodule.spec
        return {"target_mean": spec.target_mean, "target_std": spec.target_std, "num_classes": 1}

    @classmethod
    def run_info(cls, datamodule: Any) -> dict[str, Any]:
        """run.json: the target column and its scaling (labels stay empty: there are no classes)."""
        spec = datamodule.spec
        return {"target": spec.target, "target_mean": spec.target_mean, "target_std": spec.target_std,
                "num_classes": 1, "labels": []}

    def make_metrics(self, prefix: str) -> MetricCollection:
        return MetricCollection({"rmse": MeanSquaredError(squared=False), "mae": MeanAbsoluteError(), "r2": R2Score()},
                                prefix=prefix)

    def destandardise(self, values: torch.Tensor) -> torch.Tensor:
        """Standardised values → the target's units."""
        return values * self.target_std + self.target_mean

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """MSE or Huber on the standardised target."""
        return self.loss_fn(outputs.reshape(-1), targets.reshape(-1).to(outputs.dtype))

    def update_metrics(self, metrics: MetricCollection, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        metrics.update(self.destandardise(outputs.reshape(-1).float()), self.destandardise(targets.reshape(-1).float()))

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Predictions in the target's units."""
        return self.destandardise(self.net(**self.batch_inputs(batch)).reshape(-1))
