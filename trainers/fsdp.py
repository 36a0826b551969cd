"""FSDP2 (`fully_shard`) through Lightning's ModelParallelStrategy: the strategy and the sharding of a plain net."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import nn

from core.errors import ConfigError
from trainers.dir_checkpoint import DirectoryCheckpointMixin

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}
UNITS_LINE = "FSDP2 units"  # the log line naming what fully_shard made its own unit: "FSDP2 units (N ranks): a, b, <root>"
ROOT = "<root>"


@dataclass(frozen=True)
class FullyShardOptions:
    """How `fully_shard` is applied: which submodules become their own FSDP units, precision, offload."""

    reshard_after_forward: bool = True
    shard_module_types: tuple[str, ...] = ()  # class names; empty: every element of an nn.ModuleList
    param_dtype: str | None = None
    reduce_dtype: str | None = None
    cpu_offload: bool = False


def resolve_dtype(name: str | None, key: str) -> torch.dtype | None:
    """'bf16' → torch.bfloat16 (None stays None), with an error that names the key."""
    if name is None:
        return None
    if name not in DTYPES:
        raise ConfigError(f"strategy.{key}={name!r}: use one of {', '.join(sorted(DTYPES))} or null")
    return DTYPES[name]


def shard_units(net: nn.Module, module_types: tuple[str, ...] = ()) -> list[nn.Module]:
    """Submodules that get their own FSDP unit: the named classes, else the blocks held in nn.ModuleLists."""
    if module_types:
        return [m for m in net.modules() if type(m).__name__ in module_types and m is not net]
    units: list[nn.Module] = []
    for module in net.modules():
        if isinstance(module, nn.ModuleList):  # transformer layers (HF `layer`/`h`, our GPT `blocks`)
            units.extend(module)
    return units


def is_sharded(net: nn.Module) -> bool:
    """Whether `fully_shard` was already applied (configure_model runs again for validate/test)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(net, FSDPModule)


def fsdp_unit_names(net: nn.Module) -> list[str]:
    """Qualified names of the submodules that are FSDP units now (ROOT for the net itself), in module order."""
    from torch.distributed.fsdp import FSDPModule

    return [name or ROOT for name, module in net.named_modules() if isinstance(module, FSDPModule)]


def shard_net(net: nn.Module, mesh: Any, options: FullyShardOptions = FullyShardOptions()) -> nn.Module:
    """Apply `fully_shard` bottom-up: each unit (block), then the whole net (embeddings, head, the rest)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    if is_sharded(net):
        return net
    kwargs: dict[str, Any] = {
        "mesh": mesh,
        "mp_policy": MixedPrecisionPolicy(
            param_dtype=resolve_dtype(options.param_dtype, "param_dtype"),
            reduce_dtype=resolve_dtype(options.reduce_dtype, "reduce_dtype"),
        ),
        "offload_policy": CPUOffloadPolicy() if options.cpu_offload else OffloadPolicy(),
    }
    units = shard_units(net, options.shard_module_types)
    if options.shard_module_types and not units:
        raise ConfigError(f"strategy.shard_module_types={list(options.shard_module_types)} matched no submodule "
                         f"of {type(net).__name__}; name classes that occur in the net, or leave it empty")
    for unit in units:
        fully_shard(unit, reshard_after_forward=options.reshard_after_forward, **kwargs)
    # the root's parameters are gathered again right away in backward: keeping them saves one all-gather
    fully_shard(net, reshard_after_forward=False if units else options.reshard_after_forward, **kwargs)
    # what was sharded, read back from the module tree (each unit all-gathers its parameters on its own)
    rank_zero_info(f"{UNITS_LINE} ({mesh.size()} ranks): {', '.join(fsdp_unit_names(net))}")
    return net


class FSDP2Strategy(DirectoryCheckpointMixin, ModelParallelStrategy):
    """ModelParallelStrategy with data parallel = every rank (pure FSDP2), its `fully_shard` options, atomic dirs."""

    strategy_name = "shipyard_fsdp2"

    def __init__(self, options: FullyShardOptions, save_distributed_checkpoint: bool = True,
                 process_group_backend: str | None = None, timeout: timedelta | None = None) -> None:
        kwargs: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1,
                         save_distributed_checkpoint=save_distributed_checkpoint,
                         process_group_backend=process_group_backend, **kwargs)
        self.fully_shard_options = options

    def setup_environment(self) -> None:
        # "auto" would mean data parallel across nodes only (tensor parallel within a node): shard over every rank
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()
