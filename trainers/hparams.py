"""The run's hyperparameters and final metrics in TensorBoard's HParams tab (and tb/hparams.yaml)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from core.atomic import atomic_write_text

# the config groups that shape the model and its training; paths, loggers, callbacks and launchers do not
HPARAM_GROUPS = ("model", "datamodule", "trainer", "strategy")
HPARAM_KEYS = ("name", "seed")
HPARAMS_YAML = TensorBoardLogger.NAME_HPARAMS_FILE  # tb/hparams.yaml


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config's training-relevant part, nested (the logger flattens it to model/optimizer/lr, ...)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params: dict[str, Any] = {k: resolved[k] for k in HPARAM_KEYS if k in resolved}
    params.update({k: resolved[k] for k in HPARAM_GROUPS if isinstance(resolved.get(k), dict)})
    return params


def log_hparams(trainer: Trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """Rank 0 after test: every TensorBoard logger records the hyperparameters with the run's final metrics."""
    params = hyperparameters(cfg)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            # metrics are written as scalars at the last step: the HParams tab reads each tag's latest value
            logger.log_hyperparams(params, metrics=dict(metrics), step=trainer.global_step)
            logger.experiment.flush()
            # Lightning writes hparams.yaml once, at the first save (empty then: nothing was logged yet)
            atomic_write_text(Path(logger.log_dir) / HPARAMS_YAML, OmegaConf.to_yaml(OmegaConf.create(params)))
