"""The run directory: its layout, atomic writes, run.json facts, and finding checkpoints to resume from."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import zipfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

CHECKPOINT_DIR = "checkpoints"
COMPLETE_MARKER = "COMPLETE"  # written last inside directory checkpoints (DeepSpeed / FSDP)
TRACKED_PACKAGES = ("torch", "torchvision", "lightning", "hydra-core", "transformers", "torchmetrics", "deepspeed")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over the target, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: str | Path) -> None:
    """Make a rename durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic text write."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Atomic JSON write (sorted keys, trailing newline)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file with an error that names it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is this a Shipyard run directory?")
    return json.loads(path.read_text())


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


def is_complete_checkpoint(path: Path) -> bool:
    """A file checkpoint is a readable zip (torch.save's format); a directory needs its COMPLETE marker."""
    if path.is_dir():
        return (path / COMPLETE_MARKER).exists()
    if not path.is_file() or path.name.startswith("."):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False


def newest_complete_checkpoint(run_dir: str | Path) -> Path | None:
    """The most recently written complete checkpoint of a run (last.ckpt wins a tie)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    candidates = [p for p in folder.iterdir() if p.suffix == ".ckpt" and not p.name.startswith(".")]
    candidates.sort(key=lambda p: (p.stat().st_mtime, p.name == "last.ckpt"), reverse=True)
    for candidate in candidates:
        if is_complete_checkpoint(candidate):
            return candidate
    return None


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
            raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist")
        if not is_complete_checkpoint(path):
            raise ValueError(f"ckpt_path={ckpt_path} is not a complete checkpoint (truncated or corrupt)")
        return path
    if resume in (None, "never", False):
        return None
    if resume != "auto":
        raise ValueError(f"resume={resume!r}: use resume=auto (or leave it unset)")
    found = newest_complete_checkpoint(run_dir)
    return found
