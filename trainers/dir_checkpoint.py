"""Directory checkpoints (DeepSpeed ZeRO, FSDP2 distributed) that are complete or absent.

Every rank writes its shard into a hidden staging folder; after a barrier rank 0 writes the COMPLETE marker
(last), fsyncs, and renames the folder into place. `trainers.rundir.newest_complete_checkpoint` ignores
hidden names and folders without the marker, so a kill at any moment never yields a half checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from trainers.rundir import COMPLETE_MARKER, atomic_write_text, fsync_dir, now_iso

STAGING_SUFFIX = ".partial"
RETIRED_SUFFIX = ".old"


def staging_path(final: Path) -> Path:
    """Hidden sibling every rank writes into before the checkpoint is published."""
    return final.parent / f".{final.name}{STAGING_SUFFIX}"


def _fsync_tree(root: Path) -> None:
    # torch.save / DeepSpeed do not fsync; the marker must never be durable before the shards are
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def publish(staging: Path, final: Path, world_size: int) -> None:
    """Rank 0, after every rank saved: marker last, fsync, then swap the staging folder in for `final`."""
    if staging.is_dir():
        _fsync_tree(staging)
        marker = {"complete": now_iso(), "world_size": world_size}
        atomic_write_text(staging / COMPLETE_MARKER, json.dumps(marker) + "\n")
    retired = final.parent / f".{final.name}{RETIRED_SUFFIX}"
    if retired.exists():
        _remove(retired)
    if final.exists() or final.is_symlink():
        os.replace(final, retired)  # a folder cannot be renamed over a non-empty folder
    os.replace(staging, final)
    fsync_dir(final.parent)
    if retired.exists():
        _remove(retired)


class DirectoryCheckpointMixin:
    """For strategies whose save_checkpoint writes a folder on every rank (DeepSpeed, ModelParallel/FSDP2)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: Any, storage_options: Optional[Any] = None) -> None:
        final = Path(self.broadcast(str(filepath)))  # type: ignore[attr-defined]
        staging = staging_path(final)
        if self.is_global_zero:  # type: ignore[attr-defined]
            if staging.exists():
                _remove(staging)  # left by a save that was killed
            final.parent.mkdir(parents=True, exist_ok=True)
        self.barrier("shipyard_checkpoint_staging")  # type: ignore[attr-defined]
        super().save_checkpoint(checkpoint, staging, storage_options)  # type: ignore[misc]
        self.barrier("shipyard_checkpoint_saved")  # type: ignore[attr-defined]
        if self.is_global_zero:  # type: ignore[attr-defined]
            publish(staging, final, self.world_size)  # type: ignore[attr-defined]
        self.barrier("shipyard_checkpoint_published")  # type: ignore[attr-defined]
