"""DeepSpeed ZeRO strategies: Lightning's stock one (CUDA) and a CPU variant on DeepSpeed's CPU accelerator + gloo."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch.nn.modules.batchnorm import _BatchNorm

from trainers.dir_checkpoint import DirectoryCheckpointMixin


class DeepSpeedZeroStrategy(DirectoryCheckpointMixin, DeepSpeedStrategy):
    """Lightning's DeepSpeedStrategy; its checkpoint folders are complete or absent, BatchNorm nets run in bf16/fp16."""

    strategy_name = "shipyard_deepspeed"

    def _format_config(self) -> None:
        super()._format_config()
        assert isinstance(self.config, dict)
        half = next((k for k in ("bf16", "fp16") if (self.config.get(k) or {}).get("enabled")), None)
        data_types = self.config.setdefault("data_types", {})
        if half and "buffer_dtype" not in data_types and _has_batchnorm(self.lightning_module):
            # DeepSpeed casts parameters but keeps buffers fp32: batch_norm then refuses the mixed dtypes
            data_types["buffer_dtype"] = half
            rank_zero_info(f"DeepSpeed {half}: BatchNorm running statistics cast to {half} too (data_types.buffer_dtype)")


    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> dict[str, Any]:
        fitting = self.lightning_module is not None and self.lightning_module.trainer.state.fn == TrainerFn.FITTING
        if fitting or not self.zero_stage_3 or self.load_full_weights or not Path(checkpoint_path).is_dir():
            self._load_consolidated = False
            return super().load_checkpoint(checkpoint_path, weights_only)
        # validate/test from a ZeRO-3 folder: DeepSpeed's inference engine has no optimizer to restore partitions
        # from (AttributeError: _restore_from_bit16_weights). Rank 0 consolidates the fp32 weights instead and
        # Lightning's own gather-and-load (the load_full_weights path) puts them into the partitioned module.
        from trainers.consolidate import consolidate_checkpoint

        path = Path(self.broadcast(str(checkpoint_path)))
        checkpoint = _client_state(path)
        checkpoint["state_dict"] = consolidate_checkpoint(path) if self.is_global_zero else {}
        self._load_consolidated = True
        return checkpoint

    def load_model_state_dict(self, checkpoint: Mapping[str, Any], strict: bool = True) -> None:
        if getattr(self, "_load_consolidated", False):
            self.model_to_device()
            self._restore_zero_state(checkpoint, strict=strict)
            return
        super().load_model_state_dict(checkpoint, strict=strict)


# keys DeepSpeed writes into its model-states file next to Lightning's client state
_DEEPSPEED_KEYS = {"module", "buffer_names", "optimizer", "param_shapes", "frozen_param_shapes", "shared_params",
                   "frozen_param_fragments", "lr_scheduler", "data_sampler", "random_ltd", "skipped_steps",
                   "global_steps", "global_samples", "dp_world_size", "mp_world_size", "checkpoint_parallel_dimensions",
                   "ds_config", "ds_version", "sparse_tensor_module_names"}


def _client_state(path: Path) -> dict[str, Any]:
    """Lightning's part of a DeepSpeed checkpoint (epoch, loops, hyper-parameters, ...), without the weights."""
    from trainers.checkpoints import deepspeed_client_state

    return deepspeed_client_state(path, _DEEPSPEED_KEYS)  # weights_only=True with the allowlist


def _has_batchnorm(module: Any) -> bool:
    return module is not None and any(isinstance(m, _BatchNorm) for m in module.modules())


def use_deepspeed_cpu_accelerator() -> None:
    """Point DeepSpeed at its CPU accelerator (env for the ranks Lightning starts, object for this process)."""
    os.environ["DS_ACCELERATOR"] = "cpu"
    import deepspeed.accelerator.real_accelerator as real

    if real.ds_accelerator is not None and real.ds_accelerator.device_name() != "cpu":
        from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator

        real.set_accelerator(CPU_Accelerator())


class CPUDeepSpeedStrategy(DeepSpeedZeroStrategy):
    """DeepSpeed ZeRO 1/2/3 (+ CPU offload) on CPU-only machines: DeepSpeed's CPU accelerator, gloo collectives.

    Lightning's DeepSpeedStrategy refuses any accelerator but CUDA in `setup_environment`; DeepSpeed itself
    runs on CPU. Everything else (config, engine, checkpoints) is the stock strategy.
    """

    strategy_name = "shipyard_deepspeed_cpu"

    def __init__(self, *args: Any, build_comm_op: bool = False, **kwargs: Any) -> None:
        use_deepspeed_cpu_accelerator()
        kwargs.setdefault("process_group_backend", "gloo")
        if kwargs["process_group_backend"] is None:
            kwargs["process_group_backend"] = "gloo"
        super().__init__(*args, **kwargs)
        # False: skip DeepSpeed's shared-memory all-reduce op, a gcc build of 50-110 s on a cold cache
        self.build_comm_op = build_comm_op

    def setup_environment(self) -> None:
        # DeepSpeed wants device indices equal to local ranks (Lightning gives index-less `cpu` devices)
        assert self.parallel_devices is not None
        self.parallel_devices = [torch.device("cpu", i) for i in range(len(self.parallel_devices))]
        DDPStrategy.setup_environment(self)  # skips DeepSpeedStrategy's CUDA-only check, nothing else

    def _init_deepspeed_distributed(self) -> None:
        if self.build_comm_op:
            super()._init_deepspeed_distributed()
            return
        # `import deepspeed.comm.torch as m` yields the torch package (deepspeed.comm re-exports `torch`)
        ds_torch_comm = importlib.import_module("deepspeed.comm.torch")
        original = ds_torch_comm.build_shm_op
        ds_torch_comm.build_shm_op = lambda: None  # collectives go through gloo
        try:
            super()._init_deepspeed_distributed()
        finally:
            ds_torch_comm.build_shm_op = original
