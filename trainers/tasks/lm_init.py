"""model.init_from=RUN_DIR: a Shipyard LM run's weights, consolidated to fp32, for fine-tuning."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from core.errors import ConfigError
from core.rundir import RunDir

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


class InitFromError(ConfigError):
    """model.init_from names no usable run, or a run whose net differs from this one."""


def run_checkpoint(run_dir: Path) -> Path:
    """The run's best checkpoint (run.json), else its last one."""
    run = RunDir(run_dir)
    if not run.info_path.is_file():
        raise InitFromError(f"model.init_from={run_dir}: no {run.info_path.name} there; give the directory train.py "
                            f"wrote (the one holding {run.info_path.name} and {run.checkpoints_dir.name}/)")
    for key in ("best_checkpoint", "last_checkpoint"):
        path = run.recorded_checkpoint(key)  # found inside the run's checkpoints/ if the run has moved since
        if path is not None and path.exists():
            return path
    last = run.last_checkpoint_path
    if last.exists():
        return last
    raise InitFromError(f"model.init_from={run_dir}: the run has no checkpoint (did it finish?)")


def _load_net_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:  # the one checkpoint loader (weights_only + allowlist), once it is there
        from trainers.checkpoints import load_net_state_dict  # type: ignore[attr-defined]
    except ImportError:
        from trainers.consolidate import load_net_state_dict
    return load_net_state_dict(path)


def load_run_weights(run_dir: str | Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """The run's net weights, checked against `net` (same names and shapes) with an error naming the fix."""
    run_dir = Path(run_dir)
    info = RunDir(run_dir).read_info(default={})
    if info.get("task") not in (None, "language_modeling"):
        raise InitFromError(f"model.init_from={run_dir} is a {info['task']} run, not a language_modeling one")
    state = _load_net_state_dict(run_checkpoint(run_dir))
    own = net.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    shapes = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected else
                  f"{shapes[0]}: {tuple(state[shapes[0]].shape)} there, {tuple(own[shapes[0]].shape)} here")
        raise InitFromError(f"model.init_from={run_dir}: its net differs from model.net ({detail}); use the run's "
                            f"model.net settings (see {RunDir(run_dir).config_path}) and its tokenizer")
    return state


def check_init_from(value: str) -> None:
    """model.init_from names a finished Shipyard language-modeling run (run.json + a checkpoint), else exit 2."""
    run_dir = Path(value)
    if not run_dir.is_dir():
        raise InitFromError(f"model.init_from={value}: no such directory; give the run directory of an "
                            "lm_* run (it holds run.json and checkpoints/)")
    info_path = RunDir(run_dir).info_path
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        raise InitFromError(f"model.init_from={value}: no readable run.json there; give the directory train.py "
                            "wrote for an lm_* run (the one holding run.json and checkpoints/)")
    if info.get("task") != "language_modeling":
        raise InitFromError(f"model.init_from={value} is a {info.get('task', 'unknown')} run, not a "
                            "language_modeling one: continue from an lm_* run")
    run_checkpoint(run_dir)


def check_pretrained(value: str) -> None:
    """model.net.pretrained names a local Hugging Face causal-LM folder (config.json + weights), else exit 2."""
    folder = Path(value)
    fix = "give a local folder written by save_pretrained (config.json and model.safetensors; offline)"
    if not folder.is_dir():
        raise ConfigError(f"model.net.pretrained={value}: no such directory; {fix}")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"model.net.pretrained={value}: no readable config.json there; {fix}") from None
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ConfigError(f"model.net.pretrained={value}: no weights there (none of {', '.join(WEIGHT_FILES)}); {fix}")
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in CONFIG_MAPPING or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigError(f"model.net.pretrained={value}: config.json's model_type={model_type!r} is not a "
                          f"decoder language model transformers knows; {fix}")
