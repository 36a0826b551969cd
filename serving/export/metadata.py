"""metadata.json and file records of an export: provenance that travels inside the `.mar`."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from core.rundir import RunDir
from trainers.rundir import now_iso, package_versions

SERVING_PACKAGES = ("torch", "torchserve", "torch-model-archiver", "tokenizers", "pillow", "pyyaml")
# what a TorchServe host needs for the archive (no requirements.txt is shipped: an offline server could
# not install it, and install_py_dep_per_model is off by default); pyyaml: TorchServe's own undeclared need
HOST_REQUIREMENTS = {"image": ("torch", "torchserve", "pillow", "pyyaml"),
                     "text": ("torch", "torchserve", "pillow", "pyyaml", "tokenizers"),
                     "tabular": ("torch", "torchserve", "numpy", "pyyaml")}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes; of a checkpoint folder, over its files' relative names and bytes."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def file_records(root: Path, paths: list[Path]) -> dict[str, dict[str, Any]]:
    """relative path → {sha256, bytes} for every file given (folders expanded)."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        for file in sorted([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())):
            out[file.relative_to(root).as_posix()] = {"sha256": sha256_file(file), "bytes": file.stat().st_size}
    return out


def versions() -> dict[str, str | None]:
    """Training-side and serving-side package versions of the exporting environment."""
    return {**package_versions(), **package_versions(SERVING_PACKAGES)}


def host_requirements(kind: str) -> list[str]:
    """Pinned packages a stock TorchServe host needs to serve this kind of archive."""
    found = versions()
    return [f"{name}=={found[name]}" if found.get(name) else name for name in HOST_REQUIREMENTS[kind]]


def build_metadata(run_dir: Path, checkpoint: Path, model_name: str, version: str, kind: str,
                   targets: dict[str, Any], temperature: float) -> dict[str, Any]:
    """Run id, git revision, config hash, data fingerprint, metrics, versions, time, parity."""
    run = RunDir(run_dir)
    info = run.read_info()
    return {
        "model_name": model_name,
        "version": version,
        "created": now_iso(),
        "run_id": info.get("run_id"),
        "experiment": info.get("experiment"),
        "git": info.get("git"),
        "config_sha256": sha256_file(run.config_path),
        "data_fingerprint": info.get("data_fingerprint"),
        "task": info.get("task", "classification"),  # runtime/tasks/: answers and scoring columns of the task
        "labels": info.get("labels"),
        "metrics": run.read_metrics(),
        "checkpoint": {"file": checkpoint.name, "sha256": sha256_file(checkpoint)},
        "temperature": temperature,
        "targets": targets,
        "training_packages": info.get("packages"),
        "export_packages": versions(),
        "host_requirements": host_requirements(kind),
    }
