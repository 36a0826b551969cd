"""The tasks (LightningModules) and the one table that names them: run.json's "task" is a key of TASKS."""
from __future__ import annotations

import inspect
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


def check_model_fits_data(task: type[TaskModule], datamodule: Any, model_cfg: Any) -> None:
    """Before fit: the model trains the task the data is for, and its net takes the batches' inputs.

    A regression table under a classifier, or digit images under a text net, used to fail inside the first
    step (KeyError 'target', forward() got an unexpected keyword argument 'pixel_values').
    """
    data_task = getattr(datamodule, "task", None) or task.task
    inputs = batch_input_keys(datamodule, TASKS.get(data_task, task))
    net_target = str((model_cfg.get("net") or {}).get("_target_", ""))
    problem = None
    if data_task != task.task:
        problem = f"the data is for {data_task} but model._target_={model_cfg._target_!r} trains {task.task}"
    elif inputs is not None and net_target and not net_takes(net_target, inputs):
        problem = (f"model.net._target_={net_target!r} does not take this data's inputs {sorted(inputs)} "
                   f"(its forward takes {sorted(forward_parameters(net_target) or [])})")
    if problem is None:
        return
    fitting = sorted(name for name, (target, net) in model_config_targets().items()
                     if task_of_target(target) == data_task and (inputs is None or net_takes(net, inputs)))
    hint = f"use a model for it ({', '.join(f'model={m}' for m in fitting)})" if fitting else \
        f"use a model config whose _target_ is a {data_task} task (trainers/tasks/) and whose net takes its inputs"
    if data_task != task.task and hasattr(datamodule, "roles"):  # tabular: the task may have been inferred
        hint += f", or set datamodule.task={task.task} if the target really is one"
    raise ConfigError(f"{problem} ({type(datamodule).__name__}): {hint}")


def batch_input_keys(datamodule: Any, task: type[TaskModule]) -> set[str] | None:
    """The net inputs of one training item (its keys less the task's targets); None when items are not dicts."""
    train = (getattr(datamodule, "datasets", None) or {}).get("train")
    if train is None or len(train) == 0:
        return None
    item = train[0]
    return set(item) - set(task.target_keys) if isinstance(item, dict) else None


def forward_parameters(net_target: str) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters of a net class's forward (None when it cannot be imported)."""
    try:
        cls = get_class(net_target)
    except Exception:  # noqa: BLE001 - a hint only: an unimportable net is reported when it is built
        return None
    params = dict(inspect.signature(cls.forward).parameters)
    params.pop("self", None)
    return params


def net_takes(net_target: str, inputs: set[str]) -> bool:
    """The net's forward accepts every input key and needs no other (unknown nets are given the benefit)."""
    params = forward_parameters(net_target)
    if params is None:
        return True
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) and inputs - set(params):
        return False
    required = {n for n, p in params.items() if p.default is inspect.Parameter.empty
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    return required <= inputs


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
