"""run.json facts (git revision, package versions, time) and the checkpoint to resume from; layout: core.rundir."""
from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir  # noqa: F401 - re-exported
from core.errors import ConfigError, MissingPathError
from core.rundir import CHECKPOINT_DIR, COMPLETE_MARKER, RunDir, is_complete_checkpoint, read_json  # noqa: F401

TRACKED_PACKAGES = ("torch", "torchvision", "lightning", "hydra-core", "transformers", "torchmetrics", "deepspeed")


def now_iso() -> str:
    """UTC timestamp for run.json."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_revision(repo: str | Path = ".") -> dict[str, Any]:
    """Commit hash and dirty flag of the code that ran (None outside a git checkout)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(
            subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.strip()
        )
        return {"revision": rev, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"revision": None, "dirty": None}


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of `names` (default: the packages that decide what a run computes); None if absent."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def newest_complete_checkpoint(run_dir: str | Path) -> Path | None:
    """The most recently written complete checkpoint of a run (last.ckpt wins a tie)."""
    return RunDir(run_dir).newest_complete_checkpoint()


def resolve_resume_checkpoint(run_dir: Path, ckpt_path: str | None, resume: str | None) -> Path | None:
    """Apply `ckpt_path=` / `resume=auto`; a missing or unreadable checkpoint is a clear error.

    With both, the run's own newest checkpoint wins once there is one: a requeued job that started from
    `ckpt_path` continues from where it stopped, not from the start again.
    """
    if ckpt_path and resume == "auto" and (own := newest_complete_checkpoint(run_dir)) is not None:
        return own
    if ckpt_path:
        path = Path(ckpt_path)
        if not path.exists():
            raise MissingPathError(f"ckpt_path={ckpt_path} does not exist")
        if not is_complete_checkpoint(path):
            raise ConfigError(f"ckpt_path={ckpt_path} is not a complete checkpoint (truncated or corrupt)")
        return path
    if resume in (None, "never", False):
        return None
    if resume != "auto":
        raise ConfigError(f"resume={resume!r}: use resume=auto (or leave it unset)")
    found = newest_complete_checkpoint(run_dir)
    return found
