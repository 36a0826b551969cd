"""The ONE checkpoint loader: `checkpoint=best|last|PATH` resolved the same way everywhere, any layout read safely.

- `resolve_checkpoint(run_dir, "best"|"last"|PATH)` → `ResolvedCheckpoint(path, how)`:
  best = run.json's `best_checkpoint` (looked up inside the run directory when the run was moved); when the run
  recorded none, or it is gone or incomplete, the newest complete checkpoint, and `how` says so.
  last = `checkpoints/last.ckpt`; PATH = that file or folder. A missing or incomplete choice is a CheckpointError.
- `consolidate_checkpoint(path)` → one fp32 state dict (`net.*` keys) from a `.ckpt` file, a DeepSpeed ZeRO folder
  or an FSDP2 (DCP) folder; `load_net_state_dict(path)` strips the `net.` prefix for `net.load_state_dict`.
Every file is unpickled with `weights_only=True` and the allowlist in `trainers.safe_load`; no process group,
no GPU, no DeepSpeed launcher needed.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from core.atomic import atomic_write_bytes
from core.errors import MissingPathError, UserError
from core.rundir import CHECKPOINT_DIR, COMPLETE_MARKER, RunDir, is_complete_checkpoint
from trainers.safe_load import CheckpointRefused, deepspeed_globals, forced_weights_only, safe_torch_load, safe_unpickle

__all__ = ["CheckpointError", "CheckpointRefused", "ResolvedCheckpoint", "resolve_checkpoint", "checkpoint_kind",
           "load_checkpoint_file", "consolidate_checkpoint", "load_net_state_dict", "write_consolidated"]

CheckpointKind = Literal["lightning", "deepspeed", "dcp"]
NET_PREFIX = "net."
DCP_METADATA = ".metadata"  # torch.distributed.checkpoint's index file
DEEPSPEED_LATEST = "latest"  # DeepSpeed's pointer to the tag folder
# prefixes wrappers put in front of the module's own names (DeepSpeed/Lightning wrappers, torch.compile)
WRAPPER_PREFIXES = ("_forward_module.", "module.", "_orig_mod.")


class CheckpointError(UserError, ValueError):
    """No usable checkpoint for the request; the message says which and what exists."""


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """The checkpoint a command uses and how it was chosen (written into what the command produces)."""

    path: Path
    how: str  # e.g. "best (run.json best_checkpoint)", "best: none recorded, newest complete checkpoint"

    def describe(self) -> dict[str, str]:
        """For report.json / export.json: {"path": ..., "chosen": ...}."""
        return {"path": str(self.path), "chosen": self.how}


def _available(run: RunDir) -> list[str]:
    return sorted(p.name for p in run.checkpoints())


def resolve_checkpoint(run_dir: str | Path, checkpoint: str = "best") -> ResolvedCheckpoint:
    """`best` | `last` | a path → a complete checkpoint of the run (see the module docstring)."""
    run = RunDir(run_dir)
    checkpoint = str(checkpoint)
    if checkpoint == "best":
        recorded = run.recorded_checkpoint("best_checkpoint")
        if recorded is not None and is_complete_checkpoint(recorded):
            return ResolvedCheckpoint(recorded, "best (run.json best_checkpoint)")
        newest = run.newest_complete_checkpoint()
        if newest is None:
            raise CheckpointError(f"{run.checkpoints_dir} holds no complete checkpoint: train the run first "
                                  "(fast_dev_run runs keep none)")
        reason = "none recorded in run.json" if recorded is None else f"recorded {recorded.name} is missing or incomplete"
        return ResolvedCheckpoint(newest, f"best: {reason}, so the newest complete checkpoint")
    if checkpoint == "last":
        path, how = run.last_checkpoint_path, "last (checkpoints/last.ckpt)"
    else:
        path, how = Path(checkpoint), "the given path"
        if not path.exists() and not path.is_absolute() and (run.checkpoints_dir / path).exists():
            path = run.checkpoints_dir / path  # checkpoint=epoch001-step000010.ckpt: a name inside the run
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist (checkpoint={checkpoint}); "
                              f"available: {_available(run)}")
    if not is_complete_checkpoint(path):
        raise CheckpointError(f"checkpoint {path} is not a complete checkpoint (truncated or corrupt, or a sharded "
                              f"folder without its {COMPLETE_MARKER} marker)")
    return ResolvedCheckpoint(path, how)


def checkpoint_kind(path: str | Path) -> CheckpointKind:
    """What wrote this checkpoint, from its layout; an unknown layout is a clear error."""
    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"checkpoint {path} does not exist")
    if path.is_file():
        return "lightning"
    if (path / DEEPSPEED_LATEST).is_file():
        return "deepspeed"
    if (path / DCP_METADATA).is_file():
        return "dcp"
    raise CheckpointError(f"{path} is a folder but neither a DeepSpeed checkpoint (no '{DEEPSPEED_LATEST}' file) nor a "
                          f"torch distributed checkpoint (no '{DCP_METADATA}'); pass a .ckpt file or a checkpoint folder")


def _require_complete(path: Path) -> None:
    if path.is_dir() and not (path / COMPLETE_MARKER).exists():
        raise CheckpointError(f"{path} has no {COMPLETE_MARKER} marker: the save was interrupted (or it was not written "
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


def load_checkpoint_file(path: str | Path, extra_globals: list[Any] | tuple = ()) -> Any:
    """One checkpoint file (a .ckpt, a DeepSpeed *_states.pt) unpickled safely (weights_only + allowlist)."""
    return safe_torch_load(Path(path), extra_globals)


def deepspeed_client_state(path: Path, exclude: set[str]) -> dict[str, Any]:
    """The model-states file of a DeepSpeed folder without the keys in `exclude` (Lightning's client state)."""
    tag = (path / DEEPSPEED_LATEST).read_text().strip()
    files = sorted((path / tag).glob("*model_states.pt"))
    if not files:
        raise CheckpointError(f"{path / tag} has no *model_states.pt: not a complete DeepSpeed checkpoint")
    state = load_checkpoint_file(files[0], deepspeed_globals())
    return {k: v for k, v in state.items() if k not in exclude}


def _deepspeed_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # importing DeepSpeed on a CPU machine needs no GPU probe
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    # zero_to_fp32 calls an unrestricted torch.load itself (weights_only off): force weights-only with DeepSpeed's 3 classes
    with forced_weights_only(deepspeed_globals()):
        return dict(get_fp32_state_dict_from_zero_checkpoint(str(path)))


def _dcp_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    class SafeReader(FileSystemReader):
        """FileSystemReader whose `.metadata` index is unpickled with the allowlist (torch uses pickle.load)."""

        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            from torch.distributed.checkpoint.metadata import StorageMeta

            metadata = safe_unpickle(self._get_metadata_path(kwargs.get("rank")))
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    loaded: dict = {}
    # what torch's own dcp_to_torch_save does (dcp.load copies the dict, so the rebuilt entries would be lost);
    # the planner rebuilds full tensors from every rank's shards, and only the weights, not optimizer state
    with warnings.catch_warnings():  # "no process group: loading in a single process" is exactly the intent here
        warnings.simplefilter("ignore", UserWarning)
        _load_state_dict(loaded, storage_reader=SafeReader(str(path)),
                         planner=_EmptyStateDictLoadPlanner(keys={"state_dict"}), no_dist=True)
    if "state_dict" not in loaded:
        raise CheckpointError(f"{path}: the distributed checkpoint has no 'state_dict' entry (not written by Lightning)")
    return dict(loaded["state_dict"])


def _lightning_state_dict(path: Path) -> dict[str, torch.Tensor]:
    checkpoint = load_checkpoint_file(path)
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        return dict(checkpoint["state_dict"])
    if isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint)  # already a bare state dict (e.g. written by write_consolidated)
    raise CheckpointError(f"{path} holds neither a Lightning checkpoint nor a state dict")


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
        raise CheckpointError(f"{checkpoint_path}: no '{NET_PREFIX}*' weights in the checkpoint (keys start with "
                              f"{sorted({k.split('.')[0] for k in state_dict})}); was it written by a trainers.tasks module?")
    return net


def write_consolidated(checkpoint_path: str | Path, output: str | Path) -> Path:
    """Write the consolidated LightningModule state dict as one file (atomically): `{"state_dict": ...}`."""
    buffer = io.BytesIO()
    torch.save({"state_dict": consolidate_checkpoint(checkpoint_path), "consolidated_from": str(checkpoint_path)},
               buffer)
    return atomic_write_bytes(output, buffer.getvalue())


def _origin(path: Path) -> str:
    """Which run a checkpoint file came from: RUN_DIR/checkpoints/X.ckpt → the experiment in RUN_DIR/config.yaml."""
    run = RunDir(path.resolve().parent.parent)
    if path.resolve().parent.name != CHECKPOINT_DIR or not run.is_run():
        return "a file outside any Shipyard run directory"
    name = run.read_config().get("name", "?")
    return f"experiment '{name}' (run directory {run.path})"


def _wrapperless(key: str) -> str:
    # compile / activation checkpointing wrap blocks after the checkpoint's model was built: same weights
    return re.sub(r"(_orig_mod|_checkpoint_wrapped_module|_fsdp_wrapped_module)\.", "", key)


def check_checkpoint_fits(path: str | Path, module: torch.nn.Module) -> None:
    """`ckpt_path=` of another model: a CheckpointError naming its experiment, before fit (not a key-mismatch dump)."""
    path = Path(path)
    if checkpoint_kind(path) != "lightning":
        return  # sharded folders are checked by their strategy's loader
    theirs = {_wrapperless(k): tuple(v.shape) for k, v in _lightning_state_dict(path).items() if isinstance(v, torch.Tensor)}
    ours = {_wrapperless(k): tuple(v.shape) for k, v in module.state_dict().items()}
    missing, unexpected = sorted(ours.keys() - theirs.keys()), sorted(theirs.keys() - ours.keys())
    reshaped = sorted(k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])
    if missing or unexpected or reshaped:
        examples = ", ".join((missing + unexpected + reshaped)[:3])
        raise CheckpointError(f"ckpt_path={path} does not fit this model ({len(missing)} missing, {len(unexpected)} "
                              f"unexpected, {len(reshaped)} differently shaped keys, e.g. {examples}): it comes from "
                              f"{_origin(path)}. Pass a checkpoint of this experiment's runs")
