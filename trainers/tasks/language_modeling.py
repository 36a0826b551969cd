"""The language-modeling task: next-token cross-entropy on {input_ids, labels} batches of a decoder LM."""
from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trainers.schedules import decay_param_groups
from trainers.tasks.base import TaskModule
from trainers.tasks.lm_generation import GenerationSettings, log_generations
from trainers.tasks.lm_init import check_init_from, check_pretrained, load_run_weights

IGNORE_INDEX = -100  # labels the datamodule masks out (none in packed windows; kept for padded data)


def lm_loss_sums(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL (fp32, nats) and the number of scored tokens."""
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                          ignore_index=IGNORE_INDEX, reduction="sum")
    return nll, (labels != IGNORE_INDEX).sum()


class LanguageModeling(TaskModule):
    """Trains a CausalLM (trainers/nets/causal_lm.py) on packed token windows; perplexity = exp(mean NLL)."""

    task: ClassVar[str] = "language_modeling"
    target_keys: ClassVar[tuple[str, ...]] = ("labels",)
    monitor: ClassVar[str] = "val/loss"  # the best checkpoint: the lowest validation loss
    monitor_mode: ClassVar[str] = "min"
    throughput_unit: ClassVar[str] = "tokens"

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "step",
        weight_decay: float = 0.1,
        vocab_size: int | None = None,
        seq_len: int | None = None,
        activation_checkpointing: bool = False,
        compile: bool = False,
        init_from: str | None = None,
        generation: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_interval)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.generation = GenerationSettings(**(generation or {}))
        if init_from:  # before any strategy wraps or shards the net: one plain fp32 load
            self.net.load_state_dict(load_run_weights(init_from, net), strict=True)
        self._validations = 0
        self._prepared = False

    # ------------------------------------------------------------------ task seam
    @classmethod
    def model_config(cls, datamodule: Any) -> dict[str, Any]:
        """The embedding and context sizes come from the data: its tokenizer's vocabulary, its window length."""
        return {"vocab_size": int(datamodule.vocab_size), "seq_len": int(datamodule.seq_len)}

    @classmethod
    def check_model_config(cls, model_cfg: Any) -> None:
        """model.init_from and model.net.pretrained name what exists (a LM run, a HF folder), before any work."""
        from omegaconf import OmegaConf

        if not OmegaConf.is_missing(model_cfg, "init_from") and model_cfg.get("init_from"):
            check_init_from(str(model_cfg.init_from))
        net = model_cfg.get("net") or {}
        if "pretrained" in net and not OmegaConf.is_missing(net, "pretrained") and net.get("pretrained"):
            check_pretrained(str(net.pretrained))

    @classmethod
    def run_info(cls, datamodule: Any) -> dict[str, Any]:
        """run.json's vocab_size, seq_len, eot_id (and the data's splits): what export and serving decode with."""
        if hasattr(datamodule, "run_info"):
            return dict(datamodule.run_info())
        return {"vocab_size": int(datamodule.vocab_size), "seq_len": int(datamodule.seq_len),
                "eot_id": getattr(datamodule, "eot_id", None)}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (fp32) over the scored tokens."""
        nll, count = lm_loss_sums(outputs, targets)
        return nll / count.clamp(min=1)

    def count(self, targets: torch.Tensor) -> int:
        """Tokens, not windows, weight the epoch mean."""
        return int(targets.numel())

    def batch_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The net's keyword inputs from a batch."""
        return {"input_ids": batch["input_ids"]}

    def example_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One sample's inputs for export tracing and parity."""
        return {"input_ids": batch["input_ids"][:1]}

    def flops_per_token(self) -> float:
        """Training FLOPs per token at the run's window length (the net's 6N + 12LHQT)."""
        return float(self.net.flops_per_token(int(self.hparams.seq_len)))

    def flops_per_sample(self) -> float:
        """Training FLOPs of one window (ThroughputMonitor's TFLOP/s and MFU)."""
        return self.flops_per_token() * int(self.hparams.seq_len)

    # ------------------------------------------------------------------ model setup
    def configure_model(self) -> None:
        """Activation checkpointing, then per-block compile, then FSDP2 per decoder layer (torchtitan's order)."""
        if not self._prepared:  # configure_model runs again for validate/test
            self._prepared = True
            if self.hparams.activation_checkpointing:
                self.net.enable_activation_checkpointing()
            if self.hparams.compile:
                self.net.compile_blocks()
        from lightning.pytorch.strategies import ModelParallelStrategy

        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, ModelParallelStrategy):
            from dataclasses import replace

            from trainers.fsdp import FullyShardOptions, shard_net

            options = getattr(strategy, "fully_shard_options", FullyShardOptions())
            if not options.shard_module_types:  # one FSDP unit per decoder layer, whatever else holds ModuleLists
                options = replace(options, shard_module_types=(type(self.net.blocks()[0]).__name__,))
            shard_net(self.net, self.device_mesh["data_parallel"], options)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T] → logits [B, T, V]."""
        return self.net(input_ids)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.net(batch["input_ids"]), batch["labels"])
        self._train_loss_sum = self._train_loss_sum + loss.detach() * batch["labels"].numel()  # train/loss_epoch
        self._train_count += batch["labels"].numel()
        if self._logs_this_step():  # self.log costs ~1 ms: only on the steps the loggers write
            detached = loss.detach()
            self.log("train/loss_step", detached, prog_bar=True, batch_size=len(batch["input_ids"]))
            self.log("train/perplexity_step", detached.exp(), batch_size=len(batch["input_ids"]))
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=1)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._logs_this_step():
            norm = self._grad_norm()
            if norm is not None:
                self.log("train/grad_norm", norm, batch_size=1)

    def _grad_norm(self) -> torch.Tensor | None:
        """Global L2 norm of the gradients before clipping (DTensor shards reduced; DeepSpeed asks its engine)."""
        engine = self.trainer.strategy.model if hasattr(self.trainer.strategy, "zero_stage_3") else None
        if engine is not None and hasattr(engine, "get_global_grad_norm"):
            value = engine.get_global_grad_norm()  # ZeRO partitions the grads; the norm of the previous step
            return torch.as_tensor(float(value)) if value is not None else None
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return None
        norm = torch.nn.utils.get_total_norm(grads)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def _eval_step(self, split: str, metrics: Any, batch: dict[str, torch.Tensor]) -> None:
        # token-weighted: this rank's summed NLL and token count (TaskModule reduces both over the ranks)
        self.add_split_loss(split, *lm_loss_sums(self.net(batch["input_ids"]), batch["labels"]))

    def _log_split_loss(self, split: str, prog_bar: bool = False) -> None:
        """{split}/loss (token-weighted mean NLL over every rank's share of the split) and {split}/perplexity."""
        loss = self.split_loss(split)
        if loss is None:
            return
        self.log(f"{split}/loss", loss, prog_bar=prog_bar, batch_size=1)
        self.log(f"{split}/perplexity", math.exp(min(loss, 80.0)), prog_bar=prog_bar, batch_size=1)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.trainer.sanity_checking or self.trainer.state.fn != "fit":
            return
        self._validations += 1
        every = self.generation.every_n_validations
        if every and self._validations % every == 0 and self.generation.prompts:
            log_generations(self, self.generation)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.net(batch["input_ids"])

    # ------------------------------------------------------------------ optimization
    def configure_optimizers(self) -> Any:
        groups = decay_param_groups(self.named_parameters(), float(self.hparams.weight_decay))
        optimizer = self.build("optimizer", self.optimizer_factory, params=groups)
        if self.scheduler_factory is None:
            return optimizer
        kwargs: dict[str, Any] = {}
        if _takes_total_steps(self.scheduler_factory):  # a step schedule's length: the trainer knows it
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.build("scheduler", self.scheduler_factory, optimizer=optimizer, **kwargs)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}


def _takes_total_steps(factory: Callable[..., Any]) -> bool:
    """A partial whose function has a `total_steps` parameter the config left unset."""
    keywords = getattr(factory, "keywords", {}) or {}
    if keywords.get("total_steps") is not None:
        return False
    try:
        return "total_steps" in inspect.signature(getattr(factory, "func", factory)).parameters
    except (TypeError, ValueError):
        return False
