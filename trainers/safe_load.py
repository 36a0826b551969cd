"""Unpickle checkpoint files without running their code: `weights_only=True` + an explicit allowlist.

A checkpoint is a pickle, and a pickle can call any function while it loads. Shipyard's own checkpoints hold
only tensors, numbers, strings, lists and dicts (torch's weights-only unpickler allows those by default) plus
the few classes listed here; any other global in a file is refused, naming the global.

Measured on real checkpoints (torch 2.14, lightning 2.6.6, deepspeed 0.19.8):
- Lightning `.ckpt` files (digits_cnn, text_transformer; hparams, loops, callbacks, optimizer, schedulers): none.
- DeepSpeed ZeRO folders: `*model_states.pt` none; `*optim_states.pt` the three DeepSpeed classes below.
- FSDP2 (DCP) folders: tensors and `meta.pt` none; the `.metadata` index is a plain pickle (not torch.save's
  format) read by `safe_unpickle` with the DCP metadata classes below.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
from pathlib import Path
from typing import IO, Any, Iterator

import torch

from core.errors import UserError

# DeepSpeed's optimizer-state files (read by zero_to_fp32 when consolidating ZeRO 1/2/3 folders)
DEEPSPEED_GLOBALS = (
    ("deepspeed.runtime.zero.config", "ZeroStageEnum"),        # the ZeRO stage, an Enum
    ("deepspeed.runtime.fp16.loss_scaler", "LossScaler"),      # the static loss scale's state (plain attributes)
    ("deepspeed.utils.tensor_fragment", "fragment_address"),   # a dataclass of (numel, start) ints
)
# torch.distributed.checkpoint's `.metadata` index (a plain pickle of dataclasses describing the shards)
DCP_METADATA_GLOBALS = frozenset({
    *(("torch.distributed.checkpoint.metadata", name) for name in (
        "Metadata", "MetadataIndex", "StorageMeta", "ChunkStorageMetadata", "BytesStorageMetadata",
        "TensorProperties", "TensorStorageMetadata", "_MEM_FORMAT_ENCODING")),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"), ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
    ("collections", "OrderedDict"),
})
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


class CheckpointRefused(UserError, ValueError):
    """A checkpoint needs more than weights to load (it could run code): it is not loaded."""


def _refusal(path: Any, needed: str) -> CheckpointRefused:
    return CheckpointRefused(
        f"refused to load {path}: it needs the Python global '{needed}', which no Shipyard checkpoint contains "
        "(they hold only tensors, numbers, strings and the allowlisted classes in trainers/safe_load.py). "
        "Unpickling it could run arbitrary code, so it was not loaded; use a checkpoint written by train.py, "
        "or re-save only its state_dict with torch.save if you trust where it came from")


def _import(module: str, name: str) -> Any:
    mod = __import__(module, fromlist=[name])
    return getattr(mod, name)


def deepspeed_globals() -> list[Any]:
    """The DeepSpeed classes of the allowlist (imported only when a DeepSpeed folder is read)."""
    return [_import(module, name) for module, name in DEEPSPEED_GLOBALS]


def safe_torch_load(source: str | Path | IO[bytes], extra_globals: list[Any] | tuple = (), mmap: bool = False) -> Any:
    """torch.load(weights_only=True) on CPU with `extra_globals` allowed; a refused global is a clear error."""
    try:
        with torch.serialization.safe_globals(list(extra_globals)):
            return torch.load(source, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        found = _GLOBAL_RE.search(str(err))
        raise _refusal(source, found.group(1) if found else str(err).splitlines()[0]) from None


@contextlib.contextmanager
def forced_weights_only(extra_globals: list[Any] | tuple = ()) -> Iterator[None]:
    """Make every torch.load inside (e.g. DeepSpeed's zero_to_fp32, which passes weights_only=False) safe."""
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"  # torch reads it on every call and overrides the argument
    try:
        with torch.serialization.safe_globals(list(extra_globals)):
            yield
    except pickle.UnpicklingError as err:
        found = _GLOBAL_RE.search(str(err))
        raise _refusal("the checkpoint", found.group(1) if found else str(err).splitlines()[0]) from None
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


class _AllowlistUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only allowlisted globals (and torch dtypes)."""

    def __init__(self, file: IO[bytes], allowed: frozenset[tuple[str, str]], source: Any) -> None:
        super().__init__(file)
        self.allowed, self.source = allowed, source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)  # dtypes pickle as `torch.float32` etc.
        raise _refusal(self.source, f"{module}.{name}")


def safe_unpickle(path: str | Path, allowed: frozenset[tuple[str, str]] = DCP_METADATA_GLOBALS) -> Any:
    """Load a plain pickle file resolving only `allowed` globals (the DCP `.metadata` index)."""
    with open(path, "rb") as f:
        return _AllowlistUnpickler(io.BytesIO(f.read()), allowed, path).load()
