"""Strategy configs → Lightning strategies: single device, DDP, FSDP2, DeepSpeed ZeRO (CUDA or CPU)."""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Mapping

import torch
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy, Strategy
from omegaconf import DictConfig, ListConfig, OmegaConf


DEFAULT_TIMEOUT_MINUTES = 30


def plain(value: Any) -> Any:
    """Hydra containers → plain dicts/lists (DeepSpeed and torch expect builtins)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def uses_cuda(accelerator: str) -> bool:
    """Whether `trainer.accelerator` means CUDA on this machine (auto → CUDA when a GPU is visible)."""
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def single_device(accelerator: str = "auto") -> SingleDeviceStrategy:
    """One process on one device: the first GPU when there is one (and accelerator allows it), else the CPU."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return SingleDeviceStrategy(device=torch.device("cuda", 0))
    if accelerator in ("gpu", "cuda"):
        raise ValueError("trainer.accelerator=gpu but no CUDA device is visible; use trainer.accelerator=cpu")
    return SingleDeviceStrategy(device=torch.device("cpu"))


def ddp(
    accelerator: str = "auto",
    process_group_backend: str | None = None,
    find_unused_parameters: bool = False,
    gradient_as_bucket_view: bool = True,
    static_graph: bool = False,
    timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES,
) -> DDPStrategy:
    """Lightning's DDP: one process per device, gradients all-reduced (NCCL on GPUs, gloo on CPUs)."""
    del accelerator  # Lightning picks the backend from the device; kept so every strategy config reads alike
    return DDPStrategy(
        process_group_backend=process_group_backend,
        timeout=timedelta(minutes=timeout_minutes),
        find_unused_parameters=find_unused_parameters,
        gradient_as_bucket_view=gradient_as_bucket_view,
        static_graph=static_graph,
    )


def fsdp2(
    accelerator: str = "auto",
    reshard_after_forward: bool = True,
    shard_module_types: list[str] | None = None,
    param_dtype: str | None = None,
    reduce_dtype: str | None = None,
    cpu_offload: bool = False,
    save_distributed_checkpoint: bool = True,
    process_group_backend: str | None = None,
    timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES,
) -> Strategy:
    """FSDP2 (`fully_shard`) through Lightning's ModelParallelStrategy; the module shards itself in configure_model."""
    from trainers.fsdp import FSDP2Strategy, FullyShardOptions

    del accelerator  # ModelParallelStrategy runs on CUDA and, with gloo, on CPU alike
    options = FullyShardOptions(
        reshard_after_forward=reshard_after_forward,
        shard_module_types=tuple(plain(shard_module_types) or ()),
        param_dtype=param_dtype,
        reduce_dtype=reduce_dtype,
        cpu_offload=cpu_offload,
    )
    return FSDP2Strategy(
        options,
        save_distributed_checkpoint=save_distributed_checkpoint,
        process_group_backend=process_group_backend,
        timeout=timedelta(minutes=timeout_minutes),
    )


def deepspeed_config(
    zero_optimization: Mapping[str, Any],
    zero_allow_untested_optimizer: bool = True,
    zero_force_ds_cpu_optimizer: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The DeepSpeed config dict built from Hydra values (batch size, accumulation, clipping, precision: Lightning)."""
    config: dict[str, Any] = {
        "zero_optimization": plain(zero_optimization),
        "zero_allow_untested_optimizer": zero_allow_untested_optimizer,
        # False: keep the optimizer the module configured (torch AdamW) even with offload, instead of forcing
        # DeepSpeedCPUAdam, whose C++ build costs ~100 s on a cold cache
        "zero_force_ds_cpu_optimizer": zero_force_ds_cpu_optimizer,
    }
    for key, value in (plain(extra) or {}).items():
        if key in config:
            raise ValueError(f"strategy.extra.{key} duplicates strategy.{key}: set it there")
        config[key] = value
    return config


def deepspeed(
    accelerator: str = "auto",
    zero_optimization: Mapping[str, Any] | None = None,
    zero_allow_untested_optimizer: bool = True,
    zero_force_ds_cpu_optimizer: bool = False,
    extra: Mapping[str, Any] | None = None,
    process_group_backend: str | None = None,
    build_cpu_comm_op: bool = False,
    timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES,
) -> Strategy:
    """DeepSpeed ZeRO: Lightning's DeepSpeedStrategy on CUDA, CPUDeepSpeedStrategy (gloo) on CPU-only machines."""
    from trainers.deepspeed_cpu import CPUDeepSpeedStrategy, DeepSpeedZeroStrategy

    config = deepspeed_config(
        zero_optimization or {"stage": 2}, zero_allow_untested_optimizer, zero_force_ds_cpu_optimizer, extra
    )
    kwargs: dict[str, Any] = {
        "config": config,
        "process_group_backend": process_group_backend,
        "timeout": timedelta(minutes=timeout_minutes),
    }
    if uses_cuda(accelerator):
        return DeepSpeedZeroStrategy(**kwargs)
    return CPUDeepSpeedStrategy(build_comm_op=build_cpu_comm_op, **kwargs)


def environment_cpu_count() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
