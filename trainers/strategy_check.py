"""Strategy × devices × nodes × precision combinations that cannot work, refused before any work with the fix."""
from __future__ import annotations

import os
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from trainers.config_check import ConfigError
from trainers.strategies import environment_cpu_count, plain, uses_cuda

STRATEGY_KINDS = {
    "trainers.strategies.single_device": "single",
    "trainers.strategies.ddp": "ddp",
    "trainers.strategies.fsdp2": "fsdp",
    "trainers.strategies.deepspeed": "deepspeed",
}
FP16 = {"16", "16-mixed", "16-true"}
FSDP_PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-true")  # what Lightning's ModelParallelStrategy takes
DEEPSPEED_PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")
MULTI_NODE_ENV = ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "NODE_RANK", "GROUP_RANK")


def strategy_kind(cfg: DictConfig) -> str | None:
    """'single' | 'ddp' | 'fsdp' | 'deepspeed' for Shipyard's strategy configs, None for any other target."""
    return STRATEGY_KINDS.get(str(cfg.strategy.get("_target_", "")))


def _devices_here(devices: Any) -> int | None:
    if isinstance(devices, int):
        return devices
    if isinstance(devices, str) and devices.isdigit():
        return int(devices)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    return None  # "auto" / -1: Lightning takes what is there


def _submitting_elsewhere(cfg: DictConfig) -> bool:
    # launcher=slurm on a login node: the devices live on the compute nodes, not here
    launcher = cfg.get("launcher") or {}
    return launcher.get("name") == "slurm" and "SLURM_JOB_ID" not in os.environ


def _check_devices(cfg: DictConfig, kind: str | None, problems: list[str]) -> None:
    trainer = cfg.trainer
    accelerator = str(trainer.get("accelerator", "auto"))
    devices = _devices_here(trainer.get("devices", 1))
    nodes = int(trainer.get("num_nodes", 1))
    if kind == "single" and ((devices or 1) > 1 or nodes > 1):
        problems.append(f"strategy=single runs one process, but trainer.devices={trainer.devices} "
                        f"trainer.num_nodes={nodes}: use strategy=ddp (or fsdp, deepspeed_stage_N), or devices=1")
    if _submitting_elsewhere(cfg):
        return
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        problems.append(f"trainer.accelerator={accelerator} but no CUDA device is visible here: "
                        "use trainer.accelerator=cpu (or auto), or run on a GPU machine")
        return
    if devices is not None:
        available, what = ((torch.cuda.device_count(), "CUDA devices") if uses_cuda(accelerator)
                           else (environment_cpu_count(), "CPU cores"))
        if devices > available:
            problems.append(f"trainer.devices={devices} but this machine has {available} {what}: "
                            f"use trainer.devices={available} (per node) or fewer")
    local_world = os.environ.get("LOCAL_WORLD_SIZE")
    if local_world and "TORCHELASTIC_RUN_ID" in os.environ and devices is not None:
        world = int(os.environ.get("WORLD_SIZE", local_world))
        if devices != int(local_world) or devices * nodes != world:
            problems.append(f"torchrun started {local_world} processes per node and {world} in all, but "
                            f"trainer.devices={devices} trainer.num_nodes={nodes}: set trainer.devices to "
                            "--nproc_per_node and trainer.num_nodes to --nnodes")
    if nodes > 1 and not any(os.environ.get(k) not in (None, "", "none") for k in MULTI_NODE_ENV):
        problems.append(f"trainer.num_nodes={nodes} but nothing started the other nodes (no torchrun, srun or "
                        "NODE_RANK): launch with `torchrun --nnodes=N --node_rank=R ...`, launcher=slurm, or set "
                        "MASTER_ADDR, MASTER_PORT and NODE_RANK on every node (README: Multi-node without Slurm)")


def _check_precision(cfg: DictConfig, kind: str | None, problems: list[str]) -> None:
    trainer = cfg.trainer
    precision = str(trainer.get("precision", "32-true"))
    accelerator = str(trainer.get("accelerator", "auto"))
    on_cpu = not uses_cuda(accelerator) and not _submitting_elsewhere(cfg)
    if precision in FP16 and on_cpu:
        problems.append(f"trainer.precision={precision} needs a CUDA GPU (fp16 with loss scaling); on CPU use "
                        "trainer.precision=bf16-mixed or bf16-true (or 32-true)")
    if kind == "fsdp" and precision not in FSDP_PRECISIONS:
        problems.append(f"strategy=fsdp does not take trainer.precision={precision}: use one of "
                        f"{', '.join(FSDP_PRECISIONS)} (or strategy.param_dtype for FSDP2 mixed precision)")
    if kind == "deepspeed" and precision not in DEEPSPEED_PRECISIONS:
        problems.append(f"strategy=deepspeed_* does not take trainer.precision={precision}: use one of "
                        f"{', '.join(DEEPSPEED_PRECISIONS)}")


def _check_fsdp(cfg: DictConfig, problems: list[str]) -> None:
    from trainers.fsdp import DTYPES

    for key in ("param_dtype", "reduce_dtype"):
        value = cfg.strategy.get(key)
        if value is not None and value not in DTYPES:
            problems.append(f"strategy.{key}={value!r}: use one of {', '.join(sorted(DTYPES))} or null")


def _check_deepspeed(cfg: DictConfig, problems: list[str]) -> None:
    strategy = cfg.strategy
    try:
        import deepspeed  # noqa: F401 - only whether it is installed
    except ImportError as err:
        problems.append(f"strategy=deepspeed_* needs the deepspeed package ({err}): install it, or use strategy=fsdp")
        return
    zero = plain(strategy.get("zero_optimization")) or {}
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    try:
        parsed = DeepSpeedZeroConfig(**zero)
    except Exception as err:  # noqa: BLE001 - pydantic's message names the bad field
        lines = [ln.strip() for ln in str(err).strip().splitlines() if not ln.strip().startswith("For further")]
        problems.append(f"strategy.zero_optimization is not a valid DeepSpeed ZeRO block: {' '.join(lines[:5])}")
        return
    stage = int(parsed.stage)
    if stage not in (1, 2, 3):
        problems.append(f"strategy.zero_optimization.stage={stage}: use 1, 2 or 3 (or strategy=ddp for no ZeRO)")
    offload_param = zero.get("offload_param") or {}
    offload_optimizer = zero.get("offload_optimizer") or {}
    if offload_param and offload_param.get("device", "none") != "none" and stage != 3:
        problems.append(f"strategy.zero_optimization.offload_param needs ZeRO stage 3, got stage {stage}: "
                        "use strategy=deepspeed_stage_3_offload, or drop offload_param")
    devices = {str(offload_param.get("device", "none")), str(offload_optimizer.get("device", "none"))}
    if "nvme" in devices and not uses_cuda(str(cfg.trainer.get("accelerator", "auto"))):
        problems.append("NVMe offload needs DeepSpeed's async I/O op (libaio, a CUDA build): on CPU use "
                        "offload device `cpu`")
    if cfg.trainer.get("gradient_clip_algorithm") == "value" and cfg.trainer.get("gradient_clip_val"):
        problems.append("DeepSpeed clips gradients by norm only: set trainer.gradient_clip_algorithm=norm")


def _check_run_id_agreement(cfg: DictConfig, problems: list[str]) -> None:
    # ranks started by torchrun resolve the config each on their own: a timestamp run id would differ per rank
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    if os.environ.get("SHIPYARD_RUN_ID") or os.environ.get("SLURM_JOB_ID"):
        return
    from trainers.resolvers import default_run_id

    if os.environ.get("TORCHELASTIC_RUN_ID") in ("", "none") and str(cfg.run_id) == default_run_id():
        problems.append("torchrun without --rdzv-id: every rank would pick its own timestamped run directory. "
                        "Pass the same `--rdzv-id=NAME` to every torchrun launcher, or run_id=NAME")


def check_strategy(cfg: DictConfig) -> None:
    """Refuse a strategy/devices/nodes/precision combination that cannot run, naming the keys and the fix."""
    if "strategy" not in cfg or "trainer" not in cfg or not isinstance(cfg.strategy, DictConfig):
        return
    kind = strategy_kind(cfg)
    problems: list[str] = []
    _check_devices(cfg, kind, problems)
    _check_precision(cfg, kind, problems)
    if kind == "fsdp":
        _check_fsdp(cfg, problems)
    if kind == "deepspeed":
        _check_deepspeed(cfg, problems)
    if "run_id" in cfg and not OmegaConf.is_missing(cfg, "run_id"):
        _check_run_id_agreement(cfg, problems)
    if problems:
        raise ConfigError("invalid strategy combination:\n  - " + "\n  - ".join(problems))
