"""Per-task export: which net inputs a target traces and how parity compares an export with the eager net.

One module per task (serving/export/tasks/<task>.py), one table keyed by the run's task (run.json "task"):
  input_names(spec) -> tuple[str, ...]          the net's positional inputs, in forward order
  dynamic_shapes(spec) -> dict                  torch.export's dynamic_shapes (per input: dim → torch.export.Dim)
  example_args(batch, spec) -> tuple            a datamodule batch → the net's positional inputs
  compare(eager, exported, batches, tolerance) -> ParityResult   the task's parity check
"""
from __future__ import annotations

from types import ModuleType

from serving.export.tasks import classification, language_modeling, regression

# issues 13 and 14 add "language_modeling" and "regression" rows (no discovery)
EXPORTS: dict[str, ModuleType] = {
    "classification": classification,
    "language_modeling": language_modeling,
    "regression": regression,
}


def export_for(task: str) -> ModuleType:
    """The export module of a task, with an error that lists the tasks export knows."""
    if task not in EXPORTS:
        raise KeyError(f"no export for task {task!r}: known tasks are {', '.join(sorted(EXPORTS))} "
                       "(serving/export/tasks/__init__.py)")
    return EXPORTS[task]
