"""The tasks (LightningModules) and the one table that names them: run.json's "task" is a key of TASKS."""
from __future__ import annotations

from pathlib import Path

from core.rundir import RunDir
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
