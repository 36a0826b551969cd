"""export.py format=hf: an LM run as a Hugging Face folder (config.json, model.safetensors, tokenizer files).

`AutoModelForCausalLM.from_pretrained(RUN_DIR/export/hf)` and `AutoTokenizer.from_pretrained(...)` load it offline;
`train.py model.net.pretrained=RUN_DIR/export/hf` trains from it. The folder is checked before it is published:
the reloaded model's logits on validation windows must match the run's eager model (parity.max_abs_diff).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from core.rundir import RunDir
from serving.export.parity import ParityError, Tolerance
from serving.export.run_loading import ExportError, build_net, load_run_config, resolve_checkpoint, validation_batches
from trainers.rundir import read_json

EOT = "<|endoftext|>"  # the end-of-text token of Shipyard's LM tokenizers (datamodules/token_build.py)


def save_tokenizer(tokenizer_file: Path, dest: Path, max_len: int) -> None:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json, as PreTrainedTokenizerFast writes them."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), model_max_length=max_len)
    if tok.convert_tokens_to_ids(EOT) is not None and EOT in tok.get_vocab():
        tok.eos_token = tok.bos_token = tok.pad_token = EOT
    tok.save_pretrained(str(dest))


def save_folder(net: Any, tokenizer_file: Path, eot: int | None, max_len: int, dest: Path) -> None:
    """A CausalLM's `hf` model (safetensors) and the tokenizer into `dest`, end-of-text wired for generate()."""
    if eot is not None:  # generate() and pipelines stop at the data's end-of-text token
        for key in ("eos_token_id", "bos_token_id", "pad_token_id"):
            setattr(net.hf.config, key, int(eot))
            if getattr(net.hf, "generation_config", None) is not None:
                setattr(net.hf.generation_config, key, int(eot))
    net.hf.config.use_cache = True  # the ecosystem's default for inference
    net.hf.save_pretrained(str(dest), safe_serialization=True)
    net.hf.config.use_cache = False  # CausalLM's own setting (training and scoring never reuse keys/values)
    save_tokenizer(tokenizer_file, dest, max_len)


def export_hf(run_dir: str | Path, checkpoint: str = "best", parity_batches: int = 2,
              tolerance: Tolerance | None = None) -> dict[str, Any]:
    """Write RUN_DIR/export/hf; returns {path, max_abs_diff, ...}. Raises ExportError / ParityError."""
    from transformers import AutoModelForCausalLM

    tolerance = tolerance or Tolerance()
    run_dir = Path(run_dir).resolve()
    run, cfg = RunDir(run_dir), load_run_config(run_dir)
    info = read_json(run.info_path)
    if info.get("task") != "language_modeling":
        raise ExportError(f"format=hf exports language-model runs; {run_dir} is a {info.get('task')!r} run")
    if not run.tokenizer_file.is_file():
        raise ExportError(f"{run.tokenizer_file} is missing: an LM run keeps its tokenizer there; retrain the run")
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    net = build_net(cfg, ckpt)
    export = run.export
    export.path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".hf-staging-", dir=export.path))
    try:
        save_folder(net, run.tokenizer_file, info.get("eot_id"), int(info.get("seq_len") or 0) or 1024, staging)
        reloaded = AutoModelForCausalLM.from_pretrained(str(staging), local_files_only=True,
                                                        dtype=torch.float32).eval()
        worst = 0.0
        with torch.no_grad():
            for batch in validation_batches(cfg, parity_batches):
                ids = batch["input_ids"]
                worst = max(worst, float((reloaded(input_ids=ids).logits - net(ids)).abs().max()))
        if not worst <= tolerance.max_abs_diff:
            raise ParityError(f"format=hf parity FAILED: the reloaded folder's logits differ by {worst:.3g} "
                              f"(tolerance {tolerance.max_abs_diff:.3g}); nothing was published")
        for item in staging.iterdir():
            item.chmod(0o644)
        if export.hf_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=".hf-old-", dir=export.path))
            os.replace(export.hf_dir, old / export.hf_dir.name)
            shutil.rmtree(old)
        os.replace(staging, export.hf_dir)
        export.hf_dir.chmod(0o755)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"status": "ok", "path": str(export.hf_dir), "max_abs_diff": worst,
            "files": sorted(p.name for p in export.hf_dir.iterdir())}
