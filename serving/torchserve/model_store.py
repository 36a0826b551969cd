"""Putting `.mar` archives into an instance's model store and registering them with a running server."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from serving.torchserve.client import ServingError, TorchServeClient
from serving.torchserve.server_config import ModelSettings

VERSION_RE = re.compile(r"[0-9]+(\.[0-9]+)*")
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass
class ArchiveInfo:
    """What a `.mar`'s manifest says about itself."""

    path: Path
    name: str
    version: str
    handler: str


def read_manifest(mar: Path) -> ArchiveInfo:
    """Model name, version and handler from `MAR-INF/MANIFEST.json` inside the archive."""
    mar = Path(mar)
    if not mar.is_file():
        raise ServingError(f"{mar}: no such archive (build one with `python export.py run_dir=...`)")
    try:
        with zipfile.ZipFile(mar) as zf:
            manifest = json.loads(zf.read("MAR-INF/MANIFEST.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ServingError(f"{mar} is not a model archive with MAR-INF/MANIFEST.json ({err}); "
                           "build it with torch-model-archiver (export.py)") from err
    model = manifest.get("model", {})
    return ArchiveInfo(path=mar, name=model.get("modelName", ""), version=str(model.get("modelVersion", "")),
                       handler=model.get("handler", ""))


def check_name_version(name: str, version: str) -> None:
    """Names and versions TorchServe and URLs accept unchanged."""
    if not NAME_RE.fullmatch(name):
        raise ServingError(f"model name {name!r}: start with a letter; use letters, digits, '_' or '-'")
    if not VERSION_RE.fullmatch(version):
        raise ServingError(f"model version {version!r}: use dotted numbers such as 1, 1.0 or 2.1.3")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_to_store(mar: Path, store: Path, name: str | None = None, version: str | None = None) -> tuple[ArchiveInfo, str]:
    """Copy an archive into the model store as `<name>-<version>.mar` (never overwriting other bytes).

    Returns the manifest info (with the served name) and the store file name used as the register URL.
    """
    info = read_manifest(mar)
    served_name = name or info.name
    if version and version != info.version:
        raise ServingError(f"{mar} was packaged as version {info.version!r}, not {version!r}: TorchServe takes "
                           "the version from the archive, so repackage with `export.py ... version=" f"{version}`")
    check_name_version(served_name, info.version)
    store.mkdir(parents=True, exist_ok=True)
    file_name = f"{served_name}-{info.version}.mar"
    target = store / file_name
    if target.exists():
        if _sha256(target) != _sha256(mar):
            raise ServingError(f"{target} already holds a different archive for {served_name} {info.version}: "
                               "bump the version instead of replacing a served one")
    else:
        tmp = target.with_suffix(f".mar.tmp{os.getpid()}")
        shutil.copyfile(mar, tmp)
        os.replace(tmp, target)  # atomic: the server never sees half an archive
    return ArchiveInfo(path=target, name=served_name, version=info.version, handler=info.handler), file_name


def worker_states(client: TorchServeClient, name: str, version: str) -> list[str]:
    """Status of each worker of one model version ([] while none is up yet)."""
    described = client.describe(name, version)
    return [w.get("status", "") for entry in described for w in entry.get("workers", [])]


# TorchServe retries a failing load forever with a growing back-off (one retry in ~25 s here); a corrupt
# archive or a handler bug will not heal, so the first failure ends the wait with the log tail
MAX_LOAD_FAILURES = 1


def load_failures(instance_dir: Path, name: str, version: str) -> int:
    """How often a worker of name/version failed to load the model, from the worker's log."""
    marker = f"-{name}_{version}-stdout MODEL_LOG - Failed to load model"
    logs = Path(instance_dir) / "logs"
    # serving/log_config.py sends MODEL_LOG to model_log.log only; TorchServe's own config also to ts_log.log
    return max((p.read_text(errors="replace").count(marker) for p in (logs / "model_log.log", logs / "ts_log.log")
                if p.is_file()), default=0)


def wait_ready(client: TorchServeClient, name: str, version: str, deadline: float, alive: Callable[[], bool],
               workers: int = 1) -> None:
    """Poll the management API until `workers` workers of name/version are READY (`/ping` is Healthy too early).

    TorchServe reports a worker that is still loading as UNLOADING; only READY ones take requests.
    """
    states: list[str] = []
    while time.monotonic() < deadline:
        if not alive():
            raise ServingError(f"TorchServe exited while {name} {version} was loading")
        if load_failures(client.instance_dir, name, version) >= MAX_LOAD_FAILURES:
            raise ServingError(f"{name} {version}: the worker failed to load the model "
                               "(see model_log.log below); fix or re-export the archive")
        states = worker_states(client, name, version)
        if states.count("READY") >= workers:
            return
        time.sleep(0.25)
    raise ServingError(f"{name} {version}: {states.count('READY')} of {workers} workers READY before the deadline "
                       f"(worker states {states}); raise server.start_timeout or check model_log.log below")


def register_archive(client: TorchServeClient, mar: Path, settings: ModelSettings, deadline: float,
                     alive: Callable[[], bool], name: str | None = None, version: str | None = None) -> ArchiveInfo:
    """Copy into the store, register with the batch settings, and wait until a worker is READY."""
    info, url = add_to_store(mar, client_store(client), name, version)
    registered = {(m["modelName"]) for m in client.list_models()}
    if info.name in registered:
        versions = {d.get("modelVersion") for d in client.describe(info.name)}
        if info.version in versions:
            raise ServingError(f"{info.name} {info.version} is already registered; register a new version")
    client.register(url, info.name, workers=settings.workers, batch_size=settings.batch_size,
                    max_batch_delay=settings.max_batch_delay, response_timeout=settings.response_timeout,
                    startup_timeout=settings.startup_timeout)
    wait_ready(client, info.name, info.version, deadline, alive, workers=settings.workers)
    return info


def client_store(client: TorchServeClient) -> Path:
    """The model store of the client's instance."""
    return client.instance_dir / "model-store"
