"""train(cfg): build everything from config, fit, test the best checkpoint, write the run directory."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from omegaconf import DictConfig, OmegaConf, open_dict

from trainers.checkpoint_io import AtomicCheckpointIO
from trainers.checkpoints import check_checkpoint_fits
from trainers.config_check import ConfigError, check_targets
from trainers.console import tidy_lightning_logging
from trainers.cost import process_wall_seconds, record_attempt_cost
from trainers.hparams import log_hparams
from trainers.strategy_check import check_strategy
from trainers.train_options import check_train_options
from trainers.tasks import check_model_fits_data
from trainers.tasks.base import TaskModule
from trainers.resolvers import REPO_ROOT, RUN_ID_ENV, process_rank
from trainers.resume_changes import RebuildSchedule, check_resume_changes, horizon_changed
from trainers.run_claim import claim_run_dir
from trainers.slurm import check_job_environment, requeue_resume_mode, slurm_attempt_info
from core.rundir import RunDir
from core.schema import raise_problems
from trainers.rundir import git_revision, now_iso, package_versions, resolve_resume_checkpoint

def check_config(cfg: DictConfig) -> None:
    """Everything that can be known wrong before any work: keys, types, targets."""
    check_train_options(cfg)  # train.py's own keys, launcher and slurm (TrainOptions)
    check_targets(cfg)
    check_data_paths(cfg)
    task_module_class(cfg).check_model_config(cfg.model)  # the task's own checks: paths it must read, ...
    check_job_environment(cfg.trainer.get("devices"), cfg.trainer.get("num_nodes"))  # no-op outside Slurm
    check_strategy(cfg)  # strategy x devices x nodes x precision combinations that cannot run


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """Instantiate every callback of the `callbacks` group (null entries are switched off)."""
    return [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """Instantiate every logger of the `logger` group."""
    return [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]


def task_module_class(cfg: DictConfig) -> type[TaskModule]:
    """The model's LightningModule class, which must be a task (trainers/tasks/): it names the run's task."""
    cls = get_class(cfg.model._target_)
    if not (isinstance(cls, type) and issubclass(cls, TaskModule)):
        raise ConfigError(f"model._target_={cfg.model._target_!r} is not a trainers.tasks.base.TaskModule: "
                        "a model config names one of the task modules in trainers/tasks/")
    return cls


DATA_PATH_KEYS = ("train_file", "test_file", "val_file", "root", "data_dir")  # datamodule.corpus is a name (stdlib)


def check_data_paths(cfg: DictConfig) -> None:
    """A required datamodule key left unset, or a data file/folder that does not exist: a ConfigError now."""
    problems = []
    for key in cfg.datamodule.keys():
        if OmegaConf.is_missing(cfg.datamodule, key):
            problems.append(f"'datamodule.{key}' is required: pass datamodule.{key}=...")
    for key in DATA_PATH_KEYS:
        value = None if key not in cfg.datamodule or OmegaConf.is_missing(cfg.datamodule, key) else cfg.datamodule[key]
        if isinstance(value, str) and value and "://" not in value and not Path(value).exists():
            problems.append(f"datamodule.{key}={value} does not exist (relative paths are from {Path.cwd()})")
    raise_problems(problems)


def absolute_data_paths(cfg: DictConfig) -> None:
    """Relative datamodule paths → absolute, so config.yaml works for evaluate.py/export.py from any folder."""
    with open_dict(cfg):
        for key in DATA_PATH_KEYS:
            if key in cfg.datamodule and not OmegaConf.is_missing(cfg.datamodule, key):
                value = cfg.datamodule[key]
                if isinstance(value, str) and value and not Path(value).is_absolute() and "://" not in value:
                    cfg.datamodule[key] = str(Path(value).resolve())


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Rank 0 at run start: temp files of atomic writes a killed attempt left behind (`.last.ckpt.*.tmp`)."""
    folder = RunDir(run_dir).checkpoints_dir
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:  # no other attempt writes here: one run directory holds one running attempt
        path.unlink(missing_ok=True)
    return stale


def write_run_start(run_dir: Path, cfg: DictConfig, datamodule: Any, resumed_from: Path | None,
                    task: type[TaskModule], changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rank 0: the resolved config (once; replaced, with history, when a resume changed keys), data artifacts, run.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(run_dir)
    run = RunDir(run_dir)
    if not run.config_path.exists():
        run.write_config(cfg)
    elif changes:
        run.replace_config(cfg, {"time": now_iso(), "resumed_from": str(resumed_from),
                                 "changes": {k: {"old": old, "new": new} for k, (old, new) in changes.items()}})
    for rel, data in datamodule.artifacts().items():
        run.write_json(rel, data)
    info = run.read_info() if run.info_path.exists() else {
        "run_id": str(cfg.run_id),
        "experiment": cfg.name,
        "run_dir": str(run_dir.resolve()),
        "start_time": now_iso(),
        "seed": cfg.seed,
        "git": git_revision(REPO_ROOT),
        "packages": package_versions(),
        "data_fingerprint": datamodule.fingerprint(),
        "task": task.task,  # every later layer picks its per-task module by this name
        **task.run_info(datamodule),
        "attempts": [],
    }
    info["attempts"].append({"start_time": now_iso(), "resumed_from": str(resumed_from) if resumed_from else None,
                             "pid": os.getpid(), **slurm_attempt_info()})
    run.write_info(info)
    return info


def _checkpoint_callback(trainer: Trainer) -> ModelCheckpoint | None:
    """The callback that keeps the best checkpoint: the first one with a monitored metric, else the first."""
    callbacks = trainer.checkpoint_callbacks
    return next((c for c in callbacks if c.monitor), callbacks[0] if callbacks else None)


def evaluate_best(trainer: Trainer, model: LightningModule, datamodule: LightningDataModule) -> dict[str, float]:
    """Validate and test the best checkpoint (or the final weights when none was kept)."""
    callback = _checkpoint_callback(trainer)
    ckpt = callback.best_model_path if callback is not None and callback.best_model_path else None
    metrics: dict[str, float] = {}
    for results in (trainer.validate(model, datamodule, ckpt_path=ckpt, verbose=False),
                    trainer.test(model, datamodule, ckpt_path=ckpt, verbose=False)):
        for result in results:
            metrics.update({k: float(v) for k, v in result.items()})
    return metrics


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one configured run; returns its summary (also written to the run directory)."""
    # ranks that Lightning starts during fit share this run directory; restored afterwards so that the
    # next job of an in-process multirun (or any later train() call) resolves its own run id
    previous = os.environ.get(RUN_ID_ENV)
    os.environ[RUN_ID_ENV] = str(cfg.run_id)
    try:
        return _train(cfg)
    finally:
        if previous is None:
            os.environ.pop(RUN_ID_ENV, None)
        else:
            os.environ[RUN_ID_ENV] = previous


def _train(cfg: DictConfig) -> dict[str, Any]:
    check_config(cfg)
    tidy_lightning_logging()  # each INFO line once (Hydra's handlers), no litlogger tip
    seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.run_dir)
    absolute_data_paths(cfg)
    if process_rank() == 0:  # other ranks start after rank 0 claimed the directory (and wrote config.yaml)
        claim_run_dir(run_dir, requeue_resume_mode(cfg.resume), cfg.ckpt_path, bool(cfg.get("overwrite")))

    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("fit")
    task = task_module_class(cfg)
    check_model_fits_data(task, datamodule, cfg.model)
    with open_dict(cfg):  # e.g. model.num_classes: the head's size comes from the data
        cfg.model.update(task.model_config(datamodule))
        if hasattr(datamodule, "net_config"):  # sizes fitted on the data (tabular: input widths, vocabularies)
            cfg.model.net.update(datamodule.net_config())
    resume_from = resolve_resume_checkpoint(run_dir, cfg.ckpt_path, requeue_resume_mode(cfg.resume))
    resuming_own = resume_from is not None and RunDir(run_dir).is_run()
    changes = check_resume_changes(RunDir(run_dir).read_config(), cfg) if resuming_own else {}
    model = instantiate(cfg.model)
    if cfg.ckpt_path and resume_from == Path(cfg.ckpt_path):  # a handed checkpoint must be this model's
        check_checkpoint_fits(resume_from, model)
    callbacks = build_callbacks(cfg)
    if horizon_changed(changes):  # e.g. max_epochs 2 → 3: the restored scheduler would keep its old horizon
        callbacks.append(RebuildSchedule())
    trainer: Trainer = instantiate(
        cfg.trainer,
        strategy=instantiate(cfg.strategy),
        callbacks=callbacks,
        logger=build_loggers(cfg) or False,
        plugins=[AtomicCheckpointIO()],
    )
    if trainer.is_global_zero:
        # once per run, before fit (never in datamodule.setup: rebuilding a datamodule must not re-run them)
        from datamodules.checks.setup import run_checks_before_fit

        run_checks_before_fit(datamodule, cfg.datamodule.get("data_checks"))
        write_run_start(run_dir, cfg, datamodule, resume_from, task, changes)
        rank_zero_info(f"run directory: {run_dir}" + (f" (resuming from {resume_from})" if resume_from else ""))
        if resume_from is None and requeue_resume_mode(cfg.resume) == "auto":
            rank_zero_info(f"resume=auto: no complete checkpoint in {RunDir(run_dir).checkpoints_dir}: starting from scratch")

    started = time.time()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
        metrics = evaluate_best(trainer, model, datamodule) if cfg.test_after_fit else {}
    finally:  # a preempted or failed attempt used its device-hours too
        if trainer.is_global_zero and cfg.get("cost") is not None and RunDir(run_dir).info_path.exists():
            record_attempt_cost(RunDir(run_dir).info_path, instantiate(cfg.cost), trainer.num_devices, trainer.num_nodes,
                                process_wall_seconds(), trainer.strategy.root_device)
    wall = time.time() - started

    summary: dict[str, Any] = {"run_dir": str(run_dir), "metrics": metrics}
    if cfg.get("optimized_metric"):  # what an HPO sweeper optimizes: train.py's main returns it
        if cfg.optimized_metric not in metrics:
            raise KeyError(f"optimized_metric={cfg.optimized_metric!r} is not among the run's metrics "
                           f"{sorted(metrics)} (test_after_fit=false leaves none)")
        summary["objective"] = metrics[cfg.optimized_metric]
    if trainer.is_global_zero:
        callback = _checkpoint_callback(trainer)
        run = RunDir(run_dir)
        run.write_metrics(metrics)
        log_hparams(trainer, cfg, metrics)
        run.update_info(
            end_time=now_iso(),
            fit_wall_seconds=round(wall, 2),
            best_checkpoint=callback.best_model_path if callback else None,
            best_score=float(callback.best_model_score) if callback and callback.best_model_score is not None else None,
            last_checkpoint=str(last) if (last := run.last_checkpoint_path).exists() else None,
            global_step=trainer.global_step,
            epochs=trainer.current_epoch,
        )
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if k.startswith(("test/", "val/")))
        print(f"metrics: {shown}")
        print(f"run directory: {run_dir}")
        # train.py then runs evaluation/after_training.py on this rank (trainers never import evaluation)
        summary["evaluate"] = bool(cfg.get("evaluate"))
    release_process_group()
    return summary


def release_process_group() -> None:
    """Destroy the process group once this rank's collectives are done (a normal end only, as torchtitan does).

    A rank that exits with gloo's worker threads alive can abort at interpreter shutdown ("terminate called
    without an active exception", pytorch/pytorch#190489): a finished 2-node Slurm step then ends FAILED.
    A later train() in the same process (an in-process multirun) initializes a new group.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
