"""Any Shipyard checkpoint → one fp32 state dict: Lightning files, DeepSpeed ZeRO folders, FSDP2 (DCP) folders.

`consolidate_checkpoint(path)` returns the LightningModule's state dict (`net.*` keys, like a plain .ckpt);
`load_net_state_dict(path)` returns the plain net's (prefix stripped), ready for `net.load_state_dict`.
Runs in one process without a process group: export and scoring machines need no GPUs and no DeepSpeed launch.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import torch

from trainers.rundir import COMPLETE_MARKER, atomic_write_bytes

CheckpointKind = Literal["lightning", "deepspeed", "dcp"]
NET_PREFIX = "net."
DCP_METADATA = ".metadata"  # torch.distributed.checkpoint's index file
DEEPSPEED_LATEST = "latest"  # DeepSpeed's pointer to the tag folder
# prefixes wrappers put in front of the module's own names (DeepSpeed/Lightning wrappers, torch.compile)
WRAPPER_PREFIXES = ("_forward_module.", "module.", "_orig_mod.")


def checkpoint_kind(path: str | Path) -> CheckpointKind:
    """What wrote this checkpoint, from its layout; an unknown layout is a clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_file():
        return "lightning"
    if (path / DEEPSPEED_LATEST).is_file():
        return "deepspeed"
    if (path / DCP_METADATA).is_file():
        return "dcp"
    raise ValueError(f"{path} is a folder but neither a DeepSpeed checkpoint (no '{DEEPSPEED_LATEST}' file) nor a "
                     f"torch distributed checkpoint (no '{DCP_METADATA}'); pass a .ckpt file or a checkpoint folder")


def _require_complete(path: Path) -> None:
    if path.is_dir() and not (path / COMPLETE_MARKER).exists():
        raise ValueError(f"{path} has no {COMPLETE_MARKER} marker: the save was interrupted (or it was not written "
                         "by Shipyard); use another checkpoint, e.g. trainers.rundir.newest_complete_checkpoint")


def _strip_wrappers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def _to_fp32(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # low-precision weights (bf16-true, fp16) become fp32; integer buffers (num_batches_tracked) stay as they are
    return {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
            for k, v in state_dict.items()}


def _deepspeed_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # importing DeepSpeed on a CPU machine needs no GPU probe
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return dict(get_fp32_state_dict_from_zero_checkpoint(str(path)))


def _dcp_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    loaded: dict = {}
    # what torch's own dcp_to_torch_save does (dcp.load copies the dict, so the rebuilt entries would be lost);
    # the planner rebuilds full tensors from every rank's shards, and only the weights, not optimizer state
    with warnings.catch_warnings():  # "no process group: loading in a single process" is exactly the intent here
        warnings.simplefilter("ignore", UserWarning)
        _load_state_dict(loaded, storage_reader=FileSystemReader(str(path)),
                         planner=_EmptyStateDictLoadPlanner(keys={"state_dict"}), no_dist=True)
    if "state_dict" not in loaded:
        raise ValueError(f"{path}: the distributed checkpoint has no 'state_dict' entry (not written by Lightning)")
    return dict(loaded["state_dict"])


def _lightning_state_dict(path: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        return dict(checkpoint["state_dict"])
    if isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint)  # already a bare state dict (e.g. written by write_consolidated)
    raise ValueError(f"{path} holds neither a Lightning checkpoint nor a state dict")


def consolidate_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """One fp32 state dict of the LightningModule (`net.*` keys) from a file, DeepSpeed or FSDP2 checkpoint."""
    path = Path(path)
    kind = checkpoint_kind(path)
    _require_complete(path)
    loader = {"lightning": _lightning_state_dict, "deepspeed": _deepspeed_state_dict, "dcp": _dcp_state_dict}[kind]
    return _to_fp32(_strip_wrappers(loader(path)))


def load_net_state_dict(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    """The plain net's fp32 weights (`net.` prefix removed) from any Shipyard checkpoint: file or folder."""
    state_dict = consolidate_checkpoint(checkpoint_path)
    net = {k[len(NET_PREFIX):]: v for k, v in state_dict.items() if k.startswith(NET_PREFIX)}
    if not net:
        raise ValueError(f"{checkpoint_path}: no '{NET_PREFIX}*' weights in the checkpoint (keys start with "
                         f"{sorted({k.split('.')[0] for k in state_dict})}); was it written by a trainers.tasks module?")
    return net


def write_consolidated(checkpoint_path: str | Path, output: str | Path) -> Path:
    """Write the consolidated LightningModule state dict as one file (atomically): `{"state_dict": ...}`."""
    import io

    buffer = io.BytesIO()
    torch.save({"state_dict": consolidate_checkpoint(checkpoint_path), "consolidated_from": str(checkpoint_path)},
               buffer)
    atomic_write_bytes(output, buffer.getvalue())
    return Path(output)
