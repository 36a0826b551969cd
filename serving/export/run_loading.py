"""Read a training run directory for export: its config, the chosen checkpoint, the eager net, the spec."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch
from omegaconf import DictConfig

from core.rundir import RunDir, RunDirError, read_json
from runtime.preprocessing import PreprocessSpec



class ExportError(RuntimeError):
    """Export cannot go on; the message says what is wrong and how to fix it."""


def load_run_config(run_dir: Path) -> DictConfig:
    """The resolved config.yaml a run was trained with."""
    try:
        return RunDir(run_dir).require().read_config()
    except RunDirError as err:  # "is not a directory" / "config.yaml is missing"
        raise ExportError(str(err)) from None


def resolve_checkpoint(run_dir: Path, checkpoint: str) -> Path:
    """best | last | a path, resolved by trainers.checkpoints (the one rule); must be complete."""
    return choose_checkpoint(run_dir, checkpoint).path


def choose_checkpoint(run_dir: Path, checkpoint: str) -> Any:
    """trainers.checkpoints.resolve_checkpoint's ResolvedCheckpoint (path + how it was chosen), as an ExportError."""
    from trainers.checkpoints import CheckpointError, resolve_checkpoint as resolve

    try:
        return resolve(run_dir, checkpoint)
    except CheckpointError as err:
        raise ExportError(str(err)) from None


def net_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The inner net's fp32 weights from a Lightning file, or a DeepSpeed/FSDP2 folder (consolidated)."""
    from trainers.checkpoints import CheckpointRefused, load_net_state_dict

    try:
        return load_net_state_dict(checkpoint)
    except CheckpointRefused as err:  # an unsafe file: say exactly why, not "cannot read"
        raise ExportError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise ExportError(f"cannot read checkpoint {checkpoint}: {type(err).__name__}: {err}") from err


def build_net(cfg: DictConfig, checkpoint: Path) -> torch.nn.Module:
    """Instantiate cfg.model.net and load the checkpoint's weights (strict), in eval mode."""
    from hydra.utils import instantiate

    net = instantiate(cfg.model.net)
    missing, unexpected = net.load_state_dict(net_state_dict(checkpoint), strict=False)
    if missing or unexpected:
        raise ExportError(f"{checkpoint} does not match cfg.model.net: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}")
    return net.eval()


def load_spec(run_dir: Path) -> tuple[PreprocessSpec, dict[str, Any] | None]:
    """The run's preprocess.json, with the calibration temperature when evaluation has written one."""
    path = RunDir(run_dir).spec_path
    if not path.is_file():
        raise ExportError(f"{path} is missing: the run predates preprocessing specs; retrain it")
    spec = PreprocessSpec.load(path)
    calibration = None
    cal_path = RunDir(run_dir).calibration_path
    if cal_path.is_file():
        calibration = read_json(cal_path)
        temperature = calibration.get("temperature") if isinstance(calibration, dict) else None
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ExportError(f"{cal_path}: 'temperature' must be a positive finite number, got {temperature!r}")
        spec.temperature = float(temperature)
        conformal = calibration.get("conformal")
        if spec.kind == "tabular" and isinstance(conformal, dict):  # regression: served as interval [lo, hi]
            q = conformal.get("q")
            if isinstance(q, bool) or not isinstance(q, (int, float)) or not math.isfinite(q) or q < 0:
                raise ExportError(f"{cal_path}: conformal 'q' must be a finite number >= 0, got {q!r}")
            spec.tabular = {**spec.tabular, "conformal": {"alpha": float(conformal.get("alpha", 0.1)), "q": float(q)}}
    return spec, calibration


def validation_batches(cfg: DictConfig, max_batches: int) -> Iterator[dict[str, torch.Tensor]]:
    """Up to `max_batches` batches of the run's own validation split, preprocessed as in training."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.datamodule, num_workers=0)
    datamodule.setup("fit")
    for i, batch in enumerate(datamodule.val_dataloader()):
        if i >= max_batches:
            break
        yield batch
