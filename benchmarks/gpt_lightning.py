"""The GPT decoder as a LightningModule: FSDP2 sharding and torch.compile applied in configure_model."""
from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch import LightningModule

from benchmarks.gpt import GPT, GPTConfig, lm_loss, make_optimizer


def compile_blocks(model: GPT) -> None:
    """Compile each transformer block in place (torchtitan's way: identical blocks share one graph).

    GPU_CHECK_COMPILE_BACKEND picks the backend (default inductor; the CPU dry run uses aot_eager, which
    traces through dynamo and AOTAutograd like inductor does but skips C++ code generation).
    """
    backend = os.environ.get("GPU_CHECK_COMPILE_BACKEND", "inductor")
    for i, block in enumerate(model.blocks):
        model.blocks[i] = torch.compile(block, backend=backend)


class GPTLightningModule(LightningModule):
    """Next-token training of GPT on {input_ids, labels} batches; declares its FLOPs per sample for MFU."""

    def __init__(self, cfg: GPTConfig, compile_model: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.compile_model = compile_model
        self.model = GPT(cfg)
        self._flops_per_token = self.model.flops_per_token()  # before compile/sharding wrap anything

    def flops_per_sample(self) -> float:
        """Training FLOPs of one sequence (read by trainers.callbacks.throughput.ThroughputMonitor)."""
        return self._flops_per_token * self.cfg.seq_len

    def configure_model(self) -> None:
        from lightning.pytorch.strategies import ModelParallelStrategy

        if getattr(self, "_configured", False):
            return
        self._configured = True
        if self.compile_model:
            compile_blocks(self.model)
        strategy = self.trainer.strategy
        if isinstance(strategy, ModelParallelStrategy):  # FSDP2, sharded exactly as trainers.tasks.base.TaskModule does
            from trainers.fsdp import FullyShardOptions, shard_net

            shard_net(self.model, self.device_mesh["data_parallel"], getattr(strategy, "fully_shard_options", FullyShardOptions()))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return lm_loss(self.model(batch["input_ids"]), batch["labels"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # self.trainer.model: the wrapped module, right under FSDP/DeepSpeed
        return make_optimizer(self.trainer.model.parameters(), self.device.type)
