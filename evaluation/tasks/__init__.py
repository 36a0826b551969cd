"""One table of report modules keyed by the run's task (run.json "task"); each module provides the same four names.

A task's module (evaluation/tasks/<task>.py) defines:
  load(run_dir, batch_size) -> data                      the run's predictions (whatever its sections need)
  sections(data, cfg, out_dir, timed) -> dict             report.json's task sections, in report order
  markdown(report) -> list[str]                           report.md's lines for those sections
  summary(report) -> list[str]                            the parts of the one-line summary (verdict added after)
"""
from __future__ import annotations

from types import ModuleType

from evaluation.tasks import classification, language_modeling, regression

# issues 12 and 14 add "language_modeling" and "regression" rows (no discovery)
EVALUATIONS: dict[str, ModuleType] = {
    "classification": classification,
    "language_modeling": language_modeling,
    "regression": regression,
}


def evaluation_for(task: str) -> ModuleType:
    """The report module of a task, with an error that lists the tasks that have one."""
    if task not in EVALUATIONS:
        raise KeyError(f"no evaluation for task {task!r}: known tasks are {', '.join(sorted(EVALUATIONS))} "
                       "(evaluation/tasks/__init__.py)")
    return EVALUATIONS[task]
