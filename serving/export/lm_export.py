"""export_lm_run: an LM run's checkpoint → KVDecoder → TorchScript + torch.export → parity (logits + greedy) → .mar.

RUN_DIR/export/: model.pt, model.pt2, metadata.json (with "decoder"), tokenizer.json, MODEL_CARD.md, export.json,
archives/<version>/<name>.mar (model.pt, metadata.json, tokenizer.json, MODEL_CARD.md, runtime/). Files are
staged and only published once every wanted target has passed parity.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from core.export_dir import LM_ARCHIVE_DATA_FILES, ExportDir
from core.rundir import RunDir
from serving.export import package, targets
from serving.export.metadata import build_metadata, file_records
from serving.export.parity import ParityError, Tolerance
from serving.export.run_loading import (ExportError, build_net, choose_checkpoint, load_run_config,
                                        validation_batches)
from serving.export.tasks import language_modeling as lm
from trainers.rundir import atomic_write_json, atomic_write_text, now_iso, read_json

TASK = "language_modeling"
KIND = "text"  # the archive's input kind: a prompt


def decoder_metadata(decoder: Any, info: dict[str, Any]) -> dict[str, Any]:
    """metadata.json's "decoder": cache geometry, vocabulary, context, the data's end-of-text id."""
    meta = dict(decoder.meta)
    eos = info.get("eot_id") if info.get("eot_id") is not None else meta.get("eos_token_id")
    return {"num_layers": meta["num_layers"], "num_kv_heads": meta["num_kv_heads"], "head_dim": meta["head_dim"],
            "vocab_size": meta["vocab_size"], "max_seq_len": meta["max_seq_len"], "eos_token_id": eos,
            "dtype": meta["dtype"], "arch": meta["arch"]}


def fixed_prompts(tokenizer_file: Path) -> list[list[int]]:
    """lm.PROMPTS as token ids of the run's own tokenizer (empty encodings dropped)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    return [ids for ids in (tok.encode(p, add_special_tokens=False).ids for p in lm.PROMPTS) if ids]


def handler_file() -> str | None:
    """The runtime's text-generation entry, once runtime/tasks has a language_modeling row (None before)."""
    from runtime.tasks import TASKS

    module = TASKS.get(TASK)
    return module.HANDLER_FILES.get(KIND) if module is not None else None


def run_lm_targets(net: Any, decoder: Any, meta: dict[str, Any], batches: list[tuple], prompts: list[list[int]],
                   staging: Path, wanted: Sequence[str], tolerance: Tolerance) -> tuple[dict[str, Any], list[str]]:
    """Export every wanted target, load it back from its file and compare it with the eager HF model."""
    results: dict[str, Any] = {}
    failures: list[str] = []
    example = lm.trace_example(meta)
    for target in wanted:
        path = staging / targets.FILES[target]
        if target == targets.TORCHSCRIPT:
            info = targets.export_torchscript(decoder, example, path, {"decoder.json": json.dumps(meta)})
        elif target == targets.TORCH_EXPORT:
            info = targets.export_program(decoder, example, lm.dynamic_shapes(), path)
        else:
            raise ExportError(f"unknown export target {target!r}; choose from {sorted(targets.FILES)}")
        if info["status"] == "exported":
            parity = lm.compare(net, targets.loader(target)(path), batches, tolerance, prompts, meta)
            info["parity"] = parity.to_dict()
            if not parity.passed:
                info["status"] = "failed_parity"
                failures.append(lm.failure_message(target, parity, tolerance))
        results[target] = info
    for target in wanted:  # both targets are promised for a decoder (pure torch): an unsupported one is a failure
        if results[target]["status"] == "unsupported":
            failures.append(f"{target} export failed: {results[target].get('reason')}")
    return results, failures


def export_lm_run(run_dir: Path, checkpoint: str, version: str, name: str, overwrite: bool, parity_batches: int,
                  tolerance: Tolerance, wanted: Sequence[str], build_archive: bool) -> dict[str, Any]:
    """Export one LM run; returns export.json's content. Raises ExportError / ParityError on failure."""
    from serving.export.exporter import ensure_model_card, publish

    run, cfg = RunDir(run_dir), load_run_config(run_dir)
    info = read_json(run.info_path)
    export = run.export
    mar = package.archive_path(export.path, name, version)
    if build_archive:
        package.check_not_existing(mar, overwrite)
    if not run.tokenizer_file.is_file():
        raise ExportError(f"{run.tokenizer_file} is missing: an LM run keeps its tokenizer there; retrain the run")
    chosen = choose_checkpoint(run_dir, checkpoint)
    ckpt = chosen.path
    net = build_net(cfg, ckpt)
    decoder = lm.export_net(net)
    meta = decoder_metadata(decoder, info)
    batches = [lm.example_args(b, meta) for b in validation_batches(cfg, parity_batches)]
    if not batches:
        raise ExportError(f"{run_dir}: the validation split is empty; parity needs real windows")
    prompts = fixed_prompts(run.tokenizer_file)

    export.path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=export.path))
    report: dict[str, Any] = {
        "created": now_iso(), "run_dir": str(run_dir), "run_id": info.get("run_id"), "model_name": name,
        "version": version, "task": TASK, "kind": KIND, "checkpoint": str(ckpt),
        "checkpoint_choice": chosen.how, "tolerance": asdict(tolerance),
        "parity_batches": parity_batches, "greedy_prompts": list(lm.PROMPTS), "decoder": meta,
    }
    try:
        shutil.copy2(run.tokenizer_file, ExportDir(staging).tokenizer_file)
        results, failures = run_lm_targets(net, decoder, meta, batches, prompts, staging, wanted, tolerance)
        report["targets"] = results
        if failures:
            report.update(status="failed", files={}, error="; ".join(failures))
            atomic_write_json(export.export_json_path, report)
            raise ParityError("; ".join(failures) + f" (details: {export.export_json_path})")
        metadata = build_metadata(run_dir, ckpt, name, version, KIND, results, 1.0)
        metadata.update(task=TASK, labels=None, decoder=meta)
        atomic_write_json(ExportDir(staging).metadata_path, metadata)
        atomic_write_text(ExportDir(staging).model_card_path, ensure_model_card(run_dir).read_text())
        published = sorted(p.name for p in staging.iterdir())
        publish(staging, export.path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    written = [export.path / p for p in published]
    handler = handler_file() if build_archive else None
    if handler:
        mar, archived = package.build_mar(export.path, KIND, name, version, overwrite, handler, LM_ARCHIVE_DATA_FILES,
                                          tokenizer_dir=False)  # tokenizer.json is one of the data files
        report["archive"] = {"path": mar.relative_to(export.path).as_posix(), "contents": archived}
        written.append(mar)
    elif build_archive:  # the text-generation handler (runtime/tasks/language_modeling.py) is not there yet
        report["archive"] = {"status": "skipped", "reason": "runtime/tasks has no language_modeling handler"}
    report.update(status="ok", files=file_records(export.path, written))
    atomic_write_json(export.export_json_path, report)
    if handler:
        atomic_write_json(mar.parent / export.export_json_path.name, report)
    return report
