"""export_run: checkpoint → eager net → TorchScript + torch.export → parity → data files → versioned `.mar`.

Layout (RUN_DIR/export/): model.pt, model.pt2, preprocess.json, index_to_name.json, tokenizer/ (text),
metadata.json, MODEL_CARD.md, export.json (the latest export), archives/<version>/<name>.mar.
Files are built in a staging folder and only moved into place once parity has passed.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from runtime.preprocessing import PreprocessSpec
from runtime.tasks import runtime_task
from serving.export import package, targets
from serving.export.metadata import build_metadata, file_records
from serving.export.parity import ParityError, Tolerance, failure_message
from serving.export.tasks import export_for
from serving.export.run_loading import (
    ExportError,
    build_net,
    load_run_config,
    load_spec,
    choose_checkpoint,
    validation_batches,
)
from core.export_dir import ExportDir
from core.rundir import EXPORT_TOKENIZER_DIR, RunDir
from trainers.rundir import atomic_write_json, atomic_write_text, now_iso
from trainers.tasks import run_task

# tokenizer files only (never weights): what AutoTokenizer or `tokenizers` need to rebuild it offline
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "config.json")


def copy_tokenizer(source: str, dest: Path) -> list[str]:
    """Copy the tokenizer files of `source` into `dest`; tokenizer.json is required (the no-transformers path)."""
    src = Path(source)
    if not (src / "tokenizer.json").is_file():
        raise ExportError(f"{src} has no tokenizer.json: serving without transformers needs a fast tokenizer file")
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)
            copied.append(name)
    return copied


def write_data_files(staging: Path, spec: PreprocessSpec) -> PreprocessSpec:
    """preprocess.json (tokenizer_dir made relative), index_to_name.json, tokenizer/."""
    served = PreprocessSpec.from_dict(spec.to_dict())
    if spec.kind == "text":
        copy_tokenizer(spec.tokenizer_dir or "", ExportDir(staging).tokenizer_dir)
        served.tokenizer_dir = EXPORT_TOKENIZER_DIR  # resolved against the model folder by the handler
    atomic_write_json(ExportDir(staging).spec_path, served.to_dict())
    atomic_write_json(ExportDir(staging).index_to_name_path, {str(i): label for i, label in enumerate(spec.labels)})
    return served


def ensure_model_card(run_dir: Path) -> Path:
    """RUN_DIR/MODEL_CARD.md, written by evaluation's card writer when it is not there yet."""
    card = RunDir(run_dir).model_card_path
    if not card.is_file():
        from evaluation.model_card import write_model_card

        card = write_model_card(run_dir)
    return card


def publish(staging: Path, export_dir: Path) -> None:
    """Move staged files into RUN_DIR/export/ (each rename atomic; tokenizer/ swapped as a folder)."""
    for item in sorted(staging.iterdir()):
        dest = export_dir / item.name
        if item.is_dir():
            if dest.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{item.name}.old-", dir=export_dir))
                os.replace(dest, old / item.name)
                shutil.rmtree(old)
            os.replace(item, dest)
        else:
            item.chmod(0o644)  # atomic writes create 0600 temp files; model stores are often read by another user
            os.replace(item, dest)


def run_targets(net: Any, task: Any, spec: PreprocessSpec, batches: list[tuple], staging: Path, wanted: Sequence[str],
                spec_dict: dict[str, Any], tolerance: Tolerance) -> tuple[dict[str, Any], list[str]]:
    """Export every wanted target and compare it (loaded back from its file) with the eager net, as `task` does."""
    results: dict[str, Any] = {}
    failures: list[str] = []
    for target in wanted:
        path = staging / targets.FILES[target]
        if target == targets.TORCHSCRIPT:
            info = targets.export_torchscript(net, batches[0], path, targets.spec_extra_file(spec_dict))
        elif target == targets.TORCH_EXPORT:
            info = targets.export_program(net, batches[0], task.dynamic_shapes(spec), path)
        else:
            raise ExportError(f"unknown export target {target!r}; choose from {sorted(targets.FILES)}")
        if info["status"] == "exported":
            parity = task.compare(net, targets.loader(target)(path), batches, tolerance)
            info["parity"] = parity.to_dict()
            if not parity.passed:
                info["status"] = "failed_parity"
                failures.append(failure_message(target, parity, tolerance))
        results[target] = info
    if targets.TORCHSCRIPT in wanted and results[targets.TORCHSCRIPT]["status"] != "exported":
        failures.append("TorchScript export is what TorchServe serves; it must pass")
    return results, failures


def export_run(run_dir: str | Path, checkpoint: str = "best", version: str = "1.0", model_name: str | None = None,
               overwrite: bool = False, parity_batches: int = 4, tolerance: Tolerance | None = None,
               wanted: Sequence[str] = (targets.TORCHSCRIPT, targets.TORCH_EXPORT), build_archive: bool = True,
               ) -> dict[str, Any]:
    """Export one run; returns export.json's content. Raises ExportError / ParityError on failure."""
    tolerance = tolerance or Tolerance()
    run_dir = Path(run_dir).resolve()
    cfg = load_run_config(run_dir)
    info = RunDir(run_dir).read_info()
    version = package.validate_version(version)
    name = package.validate_model_name(model_name or str(info.get("experiment") or cfg.get("name")))
    export_dir = RunDir(run_dir).export_dir
    record = RunDir(run_dir).export_json_path
    mar = package.archive_path(export_dir, name, version)
    if build_archive:
        package.check_not_existing(mar, overwrite)  # before any expensive work
    task_name = run_task(run_dir)
    task = export_for(task_name)  # the task's inputs and parity check (serving/export/tasks/)
    if task_name == "language_modeling":  # a decoder with a KV cache: its own files, parity and archive
        from serving.export.lm_export import export_lm_run

        return export_lm_run(run_dir, checkpoint, version, name, overwrite, parity_batches, tolerance, wanted,
                             build_archive)
    chosen = choose_checkpoint(run_dir, checkpoint)
    ckpt = chosen.path
    spec, calibration = load_spec(run_dir)
    net = build_net(cfg, ckpt)
    batches = [task.example_args(b, spec) for b in validation_batches(cfg, parity_batches)]
    if not batches:
        raise ExportError(f"{run_dir}: the validation split is empty; parity needs real samples")

    export_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=export_dir))
    report: dict[str, Any] = {
        "created": now_iso(), "run_dir": str(run_dir), "run_id": info.get("run_id"), "model_name": name,
        "version": version, "task": task_name, "kind": spec.kind, "checkpoint": str(ckpt),
        "checkpoint_choice": chosen.how, "temperature": spec.temperature,
        "calibration": calibration, "tolerance": asdict(tolerance), "parity_batches": parity_batches,
    }
    try:
        served = write_data_files(staging, spec)
        results, failures = run_targets(net, task, spec, batches, staging, wanted, served.to_dict(), tolerance)
        report["targets"] = results
        if failures:
            report.update(status="failed", files={}, error="; ".join(failures))
            atomic_write_json(record, report)
            raise ParityError("; ".join(failures) + f" (details: {record})")
        atomic_write_json(ExportDir(staging).metadata_path,
                          build_metadata(run_dir, ckpt, name, version, spec.kind, results, spec.temperature))
        atomic_write_text(ExportDir(staging).model_card_path, ensure_model_card(run_dir).read_text())
        published = sorted(p.name for p in staging.iterdir())
        publish(staging, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    written = [export_dir / p for p in published]
    if build_archive:
        handler = runtime_task(task_name).HANDLER_FILES[spec.kind]  # the task's handler for this input kind
        mar, archived = package.build_mar(export_dir, spec.kind, name, version, overwrite, handler)
        report["archive"] = {"path": mar.relative_to(export_dir).as_posix(), "contents": archived}
        written.append(mar)
    report.update(status="ok", files=file_records(export_dir, written))
    atomic_write_json(record, report)
    # the per-version record stays beside its archive when a later export replaces export.json
    if build_archive:
        atomic_write_json(ExportDir(mar.parent).export_json_path, report)
    return report
