"""Save a sharded (FSDP2 / DeepSpeed ZeRO) checkpoint, consolidate it to one fp32 state dict, load it into a plain GPT."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.gpt import GPT


def _plain_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LightningModule keys (model.<...>, maybe _orig_mod. from torch.compile) → GPT's own keys."""
    out = {}
    for key, value in state.items():
        key = key.replace("_forward_module.", "").replace("_orig_mod.", "")
        if key.startswith("model."):
            out[key[len("model."):]] = value
    return out


def _live_weights(module: Any) -> dict[str, torch.Tensor]:
    """The trained weights as full fp32 tensors on the CPU (DTensors gathered)."""
    state = {}
    for key, value in module.state_dict().items():
        if hasattr(value, "full_tensor"):
            value = value.full_tensor()
        state[key] = value.detach().float().cpu()
    return _plain_keys(state)


def _consolidate(trainer: Any, ckpt: Path, out_file: Path) -> dict[str, torch.Tensor]:
    """One fp32 state dict from the strategy's checkpoint format (the strategies' own helper when it exists)."""
    try:  # Shipyard's consolidation (what export and resume use): file, DeepSpeed or FSDP2 folders alike
        from trainers.consolidate import write_consolidated
    except ImportError:
        write_consolidated = None
    if write_consolidated is not None:
        write_consolidated(ckpt, out_file)
    elif (ckpt / "checkpoint").is_dir() or "DeepSpeed" in type(trainer.strategy).__name__:
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

        convert_zero_checkpoint_to_fp32_state_dict(str(ckpt), str(out_file))
    elif ckpt.is_dir():
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        dcp_to_torch_save(str(ckpt), str(out_file))
    else:
        out_file.write_bytes(ckpt.read_bytes())
    from trainers.checkpoints import load_checkpoint_file
    from trainers.safe_load import deepspeed_globals

    # the one loader: weights_only=True; DeepSpeed's conversion may carry its 3 allowlisted classes
    loaded = load_checkpoint_file(out_file, deepspeed_globals() if "DeepSpeed" in type(trainer.strategy).__name__ else ())
    return _plain_keys(loaded.get("state_dict", loaded))


def save_and_consolidate(trainer: Any, module: Any, workdir: Path) -> dict[str, Any]:
    """Save through the strategy, consolidate, strict-load into a fresh GPT, compare with the live weights."""
    ckpt = workdir / "final.ckpt"
    started = time.perf_counter()
    trainer.save_checkpoint(str(ckpt))
    saved = time.perf_counter()
    if trainer.global_rank != 0:
        return {}
    state = _consolidate(trainer, ckpt, workdir / "consolidated.pt")
    consolidated = time.perf_counter()
    live = _live_weights(module)
    model = GPT(module.cfg)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)  # raises on any missing/extra key
    worst = max(float((state[k].float() - live[k]).abs().max()) for k in live if k in state)
    return {
        "format": "directory" if ckpt.is_dir() else "file",
        "save_seconds": round(saved - started, 2),
        "consolidate_seconds": round(consolidated - saved, 2),
        "tensors": len(state),
        "max_abs_diff_vs_live": worst,
        "strict_load": "ok",
    }
