"""Step-based learning-rate schedules and AdamW parameter groups (what decoder LM recipes use)."""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from core.errors import ConfigError


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int = 0, total_steps: int | None = None,
                  min_lr_ratio: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to the optimizer's lr over `warmup_steps`, then cosine decay to min_lr_ratio·lr.

    `total_steps` is the number of optimizer steps of the run (the LM task passes the trainer's estimate
    when the config leaves it out); stepped every optimizer step (`scheduler_interval: step`).
    """
    if total_steps is None or total_steps <= 0:
        raise ConfigError("warmup_cosine needs total_steps > 0: set trainer.max_steps (or model.scheduler.total_steps)")
    if warmup_steps < 0:
        raise ConfigError(f"model.scheduler.warmup_steps={warmup_steps} must be >= 0")
    warmup_steps = min(warmup_steps, total_steps - 1)  # smoke runs (fast_dev_run, a few steps) stay valid
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ConfigError(f"model.scheduler.min_lr_ratio={min_lr_ratio} must be in [0, 1]")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps  # step 0 trains at lr/warmup, not at 0: no wasted step
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _is_matrix(param: nn.Parameter) -> bool:
    # DeepSpeed ZeRO-3 replaces partitioned tensors by empty ones and keeps the real shape in ds_shape
    return len(getattr(param, "ds_shape", param.shape)) >= 2


def decay_param_groups(named_parameters: Iterable[tuple[str, nn.Parameter]],
                       weight_decay: float) -> list[dict[str, object]]:
    """AdamW groups: weight decay on matrices (linear and embedding weights), none on norms and biases."""
    decay, no_decay = [], []
    for _, param in named_parameters:
        if param.requires_grad:
            (decay if _is_matrix(param) else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
