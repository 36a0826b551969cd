"""DeepSpeed ZeRO strategies: Lightning's stock one (CUDA) and a CPU variant on DeepSpeed's CPU accelerator + gloo."""
from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy

from trainers.dir_checkpoint import DirectoryCheckpointMixin


class DeepSpeedZeroStrategy(DirectoryCheckpointMixin, DeepSpeedStrategy):
    """Lightning's DeepSpeedStrategy, unchanged except that its checkpoint folders are complete or absent."""

    strategy_name = "shipyard_deepspeed"


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
