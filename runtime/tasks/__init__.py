"""Per-task runtime code, one module per task, in one table keyed by the run's task (metadata.json "task").

A task's runtime module defines what both its TorchServe handler and `score.py` use, so that batch scores
equal served scores by construction:
  HANDLER_FILES: dict[kind, file]     the handler of runtime/handlers/ that serves each input kind
  SCORE_COLUMNS: ((name, type), ...)  scoring's output columns after "id" (types: string, float64,
                                      list<string>, list<float64>, int64)
  answers(outputs, spec, top_ks)      the net's outputs → one JSON-ready answer per row (what the handler returns)
  score_columns(answer) -> dict       one answer → the values of SCORE_COLUMNS (what scoring writes)
"""
from __future__ import annotations

from types import ModuleType

from . import classification, language_modeling, regression

DEFAULT_TASK = "classification"  # archives exported before the seam carry no "task"
# one row per task (no discovery)
TASKS: dict[str, ModuleType] = {
    "classification": classification,
    "language_modeling": language_modeling,
    "regression": regression,
}


def runtime_task(name: str | None) -> ModuleType:
    """The runtime module of a task name (None: an archive from before the seam, i.e. classification)."""
    name = name or DEFAULT_TASK
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}: this runtime serves {', '.join(sorted(TASKS))} (runtime/tasks/__init__.py)")
    return TASKS[name]
