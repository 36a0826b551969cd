"""train.py's own top-level keys: TrainOptions is their schema and holds their defaults (the one place they live).

conf/train.yaml composes the `train_options` node (these defaults) with the component groups. The components
(datamodule, model, trainer, ...) are `_target_` configs that trainers.config_check checks against their
classes; `launcher` and `slurm` are typed groups of their own (their nodes are stored here too).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf

from core.schema import defaults, validate
from trainers.slurm import SlurmConfig

# `_target_` groups: checked by trainers.config_check, not here
COMPONENTS = ("datamodule", "model", "trainer", "strategy", "callbacks", "logger", "paths", "cost")


@dataclass
class CrossValidation:
    """k-fold cross-validation: cv.folds=5 runs folds 0..4 as a multirun (cv_summary.json)."""

    folds: int | None = None
    fold: int | None = None  # set by the sweep; datamodules/cv.py maps it to the train/val/test split


@dataclass
class Launcher:
    """Where train.py runs: here (Lightning starts the local ranks) or as a Slurm batch job (conf/launcher/)."""

    name: Literal["local", "slurm"] = "local"


@dataclass
class TrainOptions:
    """train.py's keys beside the component groups, with their defaults."""

    name: str = "default"                # experiment name: the run lives in <paths.output_root>/<name>/<run_id>/
    run_id: str = "${shipyard_run_id:}"  # timestamp by default; Slurm/torchrun jobs key it by job id
    seed: int = 42
    ckpt_path: str | None = None         # resume from this checkpoint file
    resume: str | None = None            # "auto": resume from the newest complete checkpoint of the run directory
    overwrite: bool = False              # true: replace the run the directory holds (else a re-used run_id is refused)
    test_after_fit: bool = True          # validate + test the best checkpoint after fit
    # evaluate.py on the run after test (rank 0); evaluate=false skips
    evaluate: bool = "${oc.decode:${oc.env:SHIPYARD_EVALUATE,true}}"  # type: ignore[assignment] - resolves to a bool
    cv: CrossValidation = field(default_factory=CrossValidation)
    success: dict[str, Any] | None = None  # evaluate.py's success criterion, e.g. {metric: test/acc, threshold: 0.9}
    optimized_metric: str | None = None  # metrics.json key train() returns as the objective (HPO sweeps)
    launcher: Launcher = field(default_factory=Launcher)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    datamodule: Any = None
    model: Any = None
    trainer: Any = None
    strategy: Any = None
    callbacks: Any = None
    logger: Any = None
    paths: Any = None
    cost: Any = None


GROUPS = (*COMPONENTS, "launcher", "slurm")  # chosen in conf/train.yaml's defaults list, not in the node
# cv.folds=K: a multirun over cv.fold=0..K-1 without -m (mode null: -m decides; params {} unless cv.folds is set).
# In the same node as `cv`: Hydra resolves these while it merges the node, before the later nodes exist.
CV_SWEEP = {"mode": "${shipyard_cv_mode:${cv.folds}}", "sweeper": {"params": "${shipyard_cv_params:${cv.folds}}"}}


def store_nodes() -> None:
    """Store the `train_options` and `slurm/default` nodes in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="train_options", node={**defaults(TrainOptions, exclude=GROUPS), "hydra": CV_SWEEP})
    store.store(group="slurm", name="default", node=defaults(SlurmConfig))


def check_train_options(cfg: DictConfig) -> TrainOptions:
    """The composed config's top-level keys against TrainOptions (core.schema's errors; components not opened)."""
    data = {}
    for key in cfg:
        value = None if key in COMPONENTS else cfg[key]
        data[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return validate(TrainOptions, data)
