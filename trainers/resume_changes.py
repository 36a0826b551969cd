"""Resuming with changed keys: a longer or shorter horizon is applied (schedule rebuilt), anything else is refused.

A resume restores the optimizer and the scheduler from the checkpoint. Without this, `trainer.max_epochs=3
resume=auto` on a 2-epoch run kept the scheduler's `T_max: 2` (the new epoch trained at lr 0) and config.yaml
still said 2. Now the run's config.yaml is compared with the new config: keys on the allowlist below may
change (config.yaml is replaced, the earlier one and the changes are kept in config_history/), and when the
horizon changed the scheduler is rebuilt as if the run had been configured with the new horizon from the
start. A change of any other key (lr, batch size, data, net ...) would make the run two different runs in one
directory: it is refused before fit with the list of changed keys.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError

# keys (or key prefixes) that may differ on resume: how long to train, how often to validate/log, what runs after
RESUMABLE_KEYS = (
    "trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "trainer.min_epochs", "trainer.min_steps",
    "trainer.limit_train_batches", "trainer.limit_val_batches", "trainer.limit_test_batches",
    "trainer.val_check_interval", "trainer.check_val_every_n_epoch", "trainer.log_every_n_steps",
    "trainer.num_sanity_val_steps", "trainer.enable_model_summary", "trainer.enable_progress_bar",
    "model.scheduler.T_max", "model.scheduler.total_steps",  # the schedule's horizon (rebuilt below)
    "datamodule.num_workers", "callbacks.progress_bar", "callbacks.early_stopping.patience",
    "callbacks.throughput.log_every_n_steps", "callbacks.lr_monitor",
    "callbacks.signal",  # a fault injector (+callbacks.signal=, e.g. a preemption drill) is on the attempt it signals
    "evaluate", "test_after_fit", "optimized_metric",
    "launcher", "slurm", "cost", "logger", "paths.output_root",
)
# how this attempt starts, not what the run is: never a change of the run's config
ATTEMPT_KEYS = ("resume", "ckpt_path", "overwrite")
# a change of these rebuilds the learning-rate schedule for the new horizon
HORIZON_KEYS = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "model.scheduler.T_max",
                "model.scheduler.total_steps")


def _covered(key: str, entries: tuple[str, ...]) -> bool:
    return any(key == e or key.startswith(f"{e}.") for e in entries)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out if out or not prefix else {prefix: {}}
    return {prefix: node}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str) and "/" in a and "/" in b:  # outputs/x vs /abs/outputs/x
        return Path(a).resolve() == Path(b).resolve()
    return a == b


def changed_keys(saved: DictConfig, cfg: DictConfig) -> dict[str, tuple[Any, Any]]:
    """Every leaf key whose resolved value differs: key → (value in config.yaml, new value); absent is None."""
    old = _flat(OmegaConf.to_container(saved, resolve=True))
    new = _flat(OmegaConf.to_container(cfg, resolve=True))
    return {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if not _same(old.get(k), new.get(k))}


def check_resume_changes(saved: DictConfig, cfg: DictConfig) -> dict[str, tuple[Any, Any]]:
    """The changes a resume may apply (a ConfigError listing every other changed key); {} when nothing changed."""
    changes = {k: v for k, v in changed_keys(saved, cfg).items() if k not in ATTEMPT_KEYS}
    refused = {k: v for k, v in changes.items() if not _covered(k, RESUMABLE_KEYS)}
    if refused:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in refused.items())
        raise ConfigError(f"resume: these keys differ from the run's config.yaml and cannot change on resume: {listed}. "
                          "Use the run's values, or a new run_id (ckpt_path= to start from its checkpoint). "
                          f"Keys a resume may change: {', '.join(RESUMABLE_KEYS)}")
    return changes


def horizon_changed(changes: dict[str, tuple[Any, Any]]) -> bool:
    """Whether the accepted changes move the schedule's horizon (the scheduler must be rebuilt)."""
    return any(_covered(k, HORIZON_KEYS) for k in changes)


class RebuildSchedule(Callback):
    """On a resume with a new horizon: the restored schedulers → the configured ones, advanced to the same step.

    Runs at train start, after Lightning restored the optimizers and schedulers; the optimizer state (moments)
    is kept, only the learning rate follows the new schedule.
    """

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rebuild_schedulers(trainer, pl_module)


def rebuild_schedulers(trainer: Trainer, pl_module: LightningModule) -> None:
    """Replace each restored LR scheduler by a fresh one from the config, stepped as often as the restored one."""
    from lightning.pytorch.core.optimizer import _init_optimizers_and_lr_schedulers

    _, fresh_configs = _init_optimizers_and_lr_schedulers(pl_module)  # throwaway optimizers: lr arithmetic only
    for config, fresh_config in zip(trainer.lr_scheduler_configs, fresh_configs):
        old, fresh = config.scheduler, fresh_config.scheduler
        if not hasattr(old, "last_epoch") or type(old) is not type(fresh):
            continue  # e.g. ReduceLROnPlateau: no horizon to rebuild
        with warnings.catch_warnings():  # stepping without optimizer steps is the point here
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(old.last_epoch):
                fresh.step()
        for group, fresh_group in zip(old.optimizer.param_groups, fresh.optimizer.param_groups):
            group["lr"] = fresh_group["lr"]
        fresh.optimizer = old.optimizer
        config.scheduler = fresh
