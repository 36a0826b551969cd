"""Checkpoint files that are either complete or absent: temp file, fsync, rename, fsync the folder."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from trainers.rundir import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO with a durable atomic save (a kill never leaves a truncated file)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())
