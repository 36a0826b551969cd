"""Load an exported model (directory or `.mar`) for batch scoring: network, preprocessing spec, identity.

A `.mar` is a zip archive: it is unpacked once into a cache folder keyed by the archive's hash, and then
read exactly like an export directory (this is what TorchServe does with it before calling the handler).
The per-record and per-batch steps are the handlers' own functions (runtime.classifier_io), imported.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core import export_dir
from core.export_dir import ExportDir
from runtime import classifier_io as handler_io
from runtime import model_loading
from runtime.preprocessing import PreprocessSpec, SPEC_FILENAME, load_tokenizer
from runtime.text_padding import padding_for
from runtime.tasks import DEFAULT_TASK
from serving.scoring.config import ModelLoadError


MODEL_FILES = export_dir.MODEL_FILES  # TorchScript first: it is what the handler serves


@dataclass
class ScoringModel:
    """A loaded network with the preprocessing it was trained with and its name/version/metadata."""

    net: Any
    spec: PreprocessSpec
    tokenizer: Any
    name: str
    version: str
    model_file: Path
    fingerprint: str
    metadata: dict[str, Any] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    task: str = DEFAULT_TASK  # metadata.json "task": which runtime/tasks/ module answers and fills the columns
    padding: str = "max_length"  # text: the handler's choice (runtime/text_padding.py), so scores equal answers

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """One forward pass on a batch → CPU logits: the handler's own `predict_batch`."""
        return handler_io.predict_batch(self.net, inputs, self.device)

    def identity(self) -> dict[str, Any]:
        """What the output and `_SUCCESS.json` say about the model."""
        return {"name": self.name, "version": self.version, "file": self.model_file.name,
                "fingerprint": self.fingerprint, "metadata": self.metadata}


def pick_device(device: str) -> torch.device:
    """'auto' → the GPU when there is one; otherwise exactly what was asked for."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device={device} but no CUDA device is available: use device=auto or device=cpu")
    return chosen


def model_dir_of(path: str | Path) -> Path:
    """The folder holding the model files: the export folder itself, or an unpacked `.mar`."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model={path} does not exist: give an export folder (model.pt or model.pt2 + "
                             f"{SPEC_FILENAME}) or a .mar archive")
    if path.is_file():
        if path.suffix != ".mar" and not zipfile.is_zipfile(path):
            raise ModelLoadError(f"model={path} is a file but not a .mar archive (a zip)")
        return unpack_mar(path)
    return path


def unpack_mar(archive: Path) -> Path:
    """Extract a .mar once into the user's cache, keyed by its content hash (atomic: temp folder + rename)."""
    digest = file_sha256(archive)[:16]
    cache = Path(os.environ.get("SHIPYARD_CACHE", Path.home() / ".cache" / "shipyard")) / "mar" / digest
    if cache.is_dir():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=cache.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():  # refuse members that would escape the folder
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise ModelLoadError(f"{archive}: unsafe member path {member!r} in the archive")
            zf.extractall(tmp)
        try:
            os.replace(tmp, cache)
        except OSError:  # another task unpacked it first
            pass
    except zipfile.BadZipFile as err:
        raise ModelLoadError(f"model={archive} is not a readable .mar (zip) archive: {err}") from err
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return cache


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_language_model(folder: Path, metadata: dict[str, Any], device: str, job: Any) -> Any:
    from serving.scoring.lm import load_language_model  # imported on use: it loads the handler's runtime

    return load_language_model(folder, metadata, device, job)


# exports that are not a classifier-style folder (preprocess.json + model file), by metadata.json "task"
LOADERS = {"language_modeling": _load_language_model}


def load_model(path: str | Path, device: str = "auto", job: Any = None) -> Any:
    """Load network, spec, tokenizer and metadata from an export folder or a `.mar`, as the handler does.

    `job`: the ScoreOptions (its task, generation and perplexity settings shape a language model's job).
    """
    folder = model_dir_of(path)
    metadata = read_metadata(folder)
    task = str(metadata.get("task") or DEFAULT_TASK)
    if task in LOADERS:
        return LOADERS[task](folder, metadata, device, job)
    if getattr(job, "task", None) is not None:
        raise ModelLoadError(f"task={job.task} scores language models; model={path} is a {task} export (leave "
                             "task unset for its own answers)")
    if not (folder / SPEC_FILENAME).exists():
        raise ModelLoadError(f"{folder} has no {SPEC_FILENAME}: export the run with export.py (it saves the "
                             "preprocessing spec beside the model)")
    spec = model_loading.load_spec(folder)  # tokenizer_dir resolved against the folder, as in the handler
    model_file = next((folder / n for n in MODEL_FILES if (folder / n).exists()), None)
    if model_file is None:
        raise ModelLoadError(f"{folder} holds none of {MODEL_FILES}: export the run with export.py first")
    chosen = pick_device(device)
    if model_file.name == model_loading.MODEL_FILE:
        net = model_loading.load_model(folder, chosen)
    else:  # torch.export only (the handler serves TorchScript; scoring also takes a model.pt2-only folder)
        net = torch.export.load(str(model_file)).module().to(chosen)
    tokenizer = None
    if spec.kind == "text":
        if not spec.tokenizer_dir or not Path(spec.tokenizer_dir).is_dir():
            raise ModelLoadError(f"{folder}: text model without its tokenizer folder ({spec.tokenizer_dir!r}): "
                                 "re-export the run with export.py")
        tokenizer = load_tokenizer(spec.tokenizer_dir)
    name, version = model_name_version(folder, metadata)
    padding = padding_for(net, tokenizer, spec, chosen) if tokenizer is not None else "max_length"
    return ScoringModel(net, spec, tokenizer, name, version, model_file, file_sha256(model_file)[:16], metadata,
                        chosen, str(metadata.get("task") or DEFAULT_TASK), padding)


def read_metadata(folder: Path) -> dict[str, Any]:
    """metadata.json (run id, git revision, metrics, ...) when the export or archive carries one."""
    for path in (ExportDir(folder).metadata_path, ExportDir(folder).export_json_path):
        if path.exists():
            return json.loads(path.read_text())
    return {}


def model_name_version(folder: Path, metadata: dict[str, Any]) -> tuple[str, str]:
    """Name and version: the .mar manifest first, then metadata, then the folder name and '0'."""
    manifest = folder / "MAR-INF" / "MANIFEST.json"
    if manifest.exists():
        model = json.loads(manifest.read_text()).get("model", {})
        if model.get("modelName"):
            return str(model["modelName"]), str(model.get("modelVersion", "0"))
    name = metadata.get("model_name") or metadata.get("name") or folder.name
    version = metadata.get("version") or metadata.get("model_version") or "0"
    return str(name), str(version)
