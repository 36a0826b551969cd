"""The tasks (LightningModules) and the one table that names them: run.json's "task" is a key of TASKS."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hydra.utils import get_class

from core.errors import ConfigError
from core.rundir import RunDir
from trainers.resolvers import REPO_ROOT
from trainers.tasks.base import TaskModule
from trainers.tasks.classification import Classifier
from trainers.tasks.language_modeling import LanguageModeling
from trainers.tasks.regression import Regressor

# one row per task; issues 12 and 14 add "language_modeling" and "regression" (no discovery)
TASKS: dict[str, type[TaskModule]] = {
    "classification": Classifier,
    "language_modeling": LanguageModeling,
    "regression": Regressor,
}


def task_class(name: str) -> type[TaskModule]:
    """The LightningModule class of a task name, with an error that lists the known tasks."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}: known tasks are {', '.join(sorted(TASKS))} (trainers/tasks/__init__.py)")
    return TASKS[name]


def run_task(run_dir: str | Path) -> str:
    """The task a run directory was trained for (run.json "task"); runs from before the seam are classification."""
    return str(RunDir(run_dir).read_info().get("task", "classification"))


def check_task_fits_data(task: type[TaskModule], datamodule: Any, model_target: str) -> None:
    """The model trains the task the data is for (a regression table under a classifier is refused), before fit."""
    data_task = getattr(datamodule, "task", None)
    if data_task is None or data_task == task.task:
        return
    nets = getattr(datamodule, "net_module", None)  # e.g. tables: only the tabular nets read their batches
    fitting = sorted(name for name, (target, net) in model_config_targets().items()
                     if task_of_target(target) == data_task and (nets is None or net.startswith(nets)))
    hint = f"use a {data_task} model ({', '.join(f'model={m}' for m in fitting)})" if fitting else \
        f"use a model config whose _target_ is a {data_task} task (trainers/tasks/)"
    if hasattr(datamodule, "roles"):  # tabular: the task may have been inferred from the target
        hint += f", or set datamodule.task={task.task} if the target really is one"
    raise ConfigError(f"the data is for {data_task} ({type(datamodule).__name__}) but model._target_={model_target!r} "
                      f"trains {task.task}: {hint}")


def model_config_targets() -> dict[str, tuple[str, str]]:
    """conf/model/NAME.yaml → (its _target_, its net's _target_): the model choices a hint can name."""
    out = {}
    for path in sorted((REPO_ROOT / "conf" / "model").glob("*.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        if isinstance(config.get("_target_"), str):
            out[path.stem] = (config["_target_"], str((config.get("net") or {}).get("_target_", "")))
    return out


def task_of_target(target: str) -> str | None:
    """The task name of a model _target_ (None when it is not a TaskModule)."""
    try:
        cls = get_class(target)
    except Exception:  # noqa: BLE001 - a hint only: an unimportable config is not this run's model
        return None
    return cls.task if isinstance(cls, type) and issubclass(cls, TaskModule) else None
