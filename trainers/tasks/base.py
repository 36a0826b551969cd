"""TaskModule: what every task's LightningModule shares (optimizer partials, FSDP2, epoch loss, the step loop).

A task subclass says only what differs between kinds of model: its name (`task`), the batch keys that are
targets rather than net inputs, the loss, its metric collections (`make_metrics`), the checkpoint monitor
and the throughput unit. Later layers read `run.json`'s "task" and look up their own per-task module.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MetricCollection

from core.errors import ConfigError

STAGES = ("train", "val", "test")


class TaskModule(LightningModule):
    """A plain net trained with one task's loss and metrics; subclasses fill the class variables and hooks."""

    task: ClassVar[str]                        # the run.json "task": a key of every layer's task table
    target_keys: ClassVar[tuple[str, ...]] = ()  # batch keys that are targets, not net inputs
    monitor: ClassVar[str] = "val/loss"        # the best checkpoint's (and early stopping's) metric ...
    monitor_mode: ClassVar[str] = "min"        # ... and whether higher ("max") or lower ("min") is better
    throughput_unit: ClassVar[str] = "samples"  # what ThroughputMonitor counts per step: samples or tokens

    def __init__(self, net: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None, scheduler_interval: str = "epoch") -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self._train_loss_sum: torch.Tensor | float = 0.0
        self._train_count = 0
        self._split_sums: dict[str, list[torch.Tensor]] = {}  # split → [summed loss, count] on this rank
        self.train_metrics = self.val_metrics = self.test_metrics = None  # set by init_metrics()

    # ---- what a task defines -------------------------------------------------------------------------------
    @classmethod
    def model_config(cls, datamodule: Any) -> dict[str, Any]:
        """Model config keys filled from the datamodule at run time (e.g. num_classes); none by default."""
        return {}

    @classmethod
    def check_model_config(cls, model_cfg: Any) -> None:
        """Refuse (core.errors.ConfigError) what the model config names but cannot exist; nothing by default."""

    @classmethod
    def run_info(cls, datamodule: Any) -> dict[str, Any]:
        """What run.json records about the task beside "task" (e.g. labels); none by default."""
        return {}

    def make_metrics(self, prefix: str) -> MetricCollection | None:
        """The metric collection of one stage (prefix "train/", "val/", "test/"); None: loss only."""
        return None

    def loss(self, outputs: torch.Tensor, targets: Any) -> torch.Tensor:
        """The training objective of the net's outputs against the batch's targets."""
        raise NotImplementedError(f"{type(self).__name__} must define loss(outputs, targets)")

    def targets(self, batch: dict[str, torch.Tensor]) -> Any:
        """The batch's targets (the first target key by default)."""
        return batch[self.target_keys[0]]

    def batch_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The net's keyword inputs: every batch key that is not a target."""
        return {k: v for k, v in batch.items() if k not in self.target_keys}

    def example_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs export traces and checks parity on (the net's keyword inputs of a real batch)."""
        return self.batch_inputs(batch)

    def count(self, targets: Any) -> int:
        """How many units a batch's loss is averaged over (samples by default): weights the epoch mean."""
        return len(targets)

    def update_metrics(self, metrics: MetricCollection, outputs: torch.Tensor, targets: Any) -> None:
        """Feed one batch to a stage's metrics (a task reshapes here when its metrics need it)."""
        metrics.update(outputs, targets)

    # ---- shared machinery ----------------------------------------------------------------------------------
    def init_metrics(self) -> None:
        """Build train/val/test metric collections with make_metrics (call at the end of a task's __init__)."""
        self.train_metrics = self.make_metrics("train/")
        self.val_metrics = self.make_metrics("val/")
        self.test_metrics = self.make_metrics("test/")

    def configure_model(self) -> None:
        """Under FSDP2 (Lightning's ModelParallelStrategy) shard the plain net's blocks, then the net, with fully_shard."""
        from lightning.pytorch.strategies import ModelParallelStrategy

        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, ModelParallelStrategy):
            from trainers.fsdp import FullyShardOptions, shard_net

            options = getattr(strategy, "fully_shard_options", FullyShardOptions())
            shard_net(self.net, self.device_mesh["data_parallel"], options)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """The net's keyword inputs → its outputs."""
        return self.net(**inputs)

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        targets = self.targets(batch)
        outputs = self.net(**self.batch_inputs(batch))
        return self.loss(outputs, targets), outputs, targets

    def _update(self, metrics: MetricCollection | None, outputs: torch.Tensor, targets: Any) -> None:
        if metrics is not None:
            self.update_metrics(metrics, outputs, targets)

    def _log_metrics(self, metrics: MetricCollection | None, prog_bar: bool = False) -> None:
        if metrics is not None:
            self.log_dict(metrics.compute(), prog_bar=prog_bar, sync_dist=True)
            metrics.reset()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, outputs, targets = self._step(batch)
        self._update(self.train_metrics, outputs.detach(), targets)
        n = self.count(targets)
        # the epoch mean is a running device sum (no sync); `self.log` costs ~1 ms per call, so the step value is
        # logged only on the steps the loggers write (trainer.log_every_n_steps): same keys as on_step+on_epoch
        self._train_loss_sum = self._train_loss_sum + loss.detach() * n
        self._train_count += n
        if self._logs_this_step():
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        return loss

    def _logs_this_step(self) -> bool:
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        return bool(getattr(connector, "should_update_logs", True))

    def on_train_start(self) -> None:
        # Lightning 2.6 keeps every submodule's mode: a net handed over in eval mode (a pretrained loader's
        # default) would train with dropout/batch-norm statistics off. Only fully frozen modules stay in eval.
        for module in self.modules():
            if not module.training and any(p.requires_grad for p in module.parameters()):
                module.train()

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum, self._train_count = 0.0, 0

    def on_train_epoch_end(self) -> None:
        if self._train_count:
            self.log("train/loss_epoch", self._train_loss_sum / self._train_count, prog_bar=True, sync_dist=True)
        self._log_metrics(self.train_metrics)

    def add_split_loss(self, split: str, loss_sum: torch.Tensor, count: torch.Tensor | int) -> None:
        """Add a batch's summed loss and its sample (or token) count to the split's running sums (no sync)."""
        sums = self._split_sums.setdefault(split, [torch.zeros((), device=self.device, dtype=torch.float64),
                                                   torch.zeros((), device=self.device, dtype=torch.float64)])
        sums[0] += loss_sum.detach().double()
        sums[1] += torch.as_tensor(count, device=self.device).double()

    def split_loss(self, split: str) -> float | None:
        """Every rank's summed loss over every rank's count: each sample once, whatever each rank's share
        (averaging the ranks' means would weigh a rank with fewer samples more); None when nothing was added."""
        sums = self._split_sums.pop(split, None)
        if sums is None:
            return None
        total = self.trainer.strategy.reduce(torch.stack(sums), reduce_op="sum")
        return float(total[0] / total[1].clamp(min=1))

    # _eval_step / _log_split_loss: what a validation or test step adds and logs (a task may redefine both)
    def _eval_step(self, split: str, metrics: MetricCollection | None, batch: dict[str, torch.Tensor]) -> None:
        loss, outputs, targets = self._step(batch)
        self._update(metrics, outputs, targets)
        n = self.count(targets)
        self.add_split_loss(split, loss * n, n)  # the loss is a batch mean

    def _log_split_loss(self, split: str, prog_bar: bool = False) -> None:
        loss = self.split_loss(split)
        if loss is not None:
            self.log(f"{split}/loss", loss, prog_bar=prog_bar, batch_size=1)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", self.val_metrics, batch)

    def on_validation_epoch_end(self) -> None:
        self._log_split_loss("val", prog_bar=True)
        self._log_metrics(self.val_metrics, prog_bar=True)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", self.test_metrics, batch)

    def on_test_epoch_end(self) -> None:
        self._log_split_loss("test")
        self._log_metrics(self.test_metrics)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.net(**self.batch_inputs(batch))

    def configure_optimizers(self) -> Any:
        # self.trainer.model: the wrapped module, so this stays right under FSDP/DeepSpeed
        optimizer = self.build("optimizer", self.optimizer_factory, params=self.trainer.model.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.build("scheduler", self.scheduler_factory, optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }

    @staticmethod
    def build(key: str, factory: Callable[..., Any], **kwargs: Any) -> Any:
        """Call model.<key>'s partial; a value torch refuses (lr=-1) surfaces only here: a ConfigError naming it."""
        try:
            return factory(**kwargs)
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(f"model.{key}: {err}") from err
