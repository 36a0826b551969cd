"""The task seam: one table of tasks, the model config names one, its monitor drives the best checkpoint."""
from __future__ import annotations

import pytest
import yaml

from tests.conftest import CONF
from trainers.compose import compose_train
from trainers.config_check import ConfigError
from trainers.run import check_config
from trainers.tasks import TASKS, task_class
from trainers.tasks.base import TaskModule


def test_every_task_row_names_its_own_task():
    for name, cls in TASKS.items():
        assert issubclass(cls, TaskModule) and cls.task == name
        assert cls.throughput_unit in ("samples", "tokens") and cls.monitor_mode in ("min", "max")


def test_every_model_config_is_a_task_of_the_table():
    targets = {yaml.safe_load(p.read_text())["_target_"] for p in (CONF / "model").glob("*.yaml")}
    known = {f"{cls.__module__}.{cls.__qualname__}" for cls in TASKS.values()}
    assert targets <= known, targets - known


def test_unknown_task_names_the_known_ones():
    with pytest.raises(KeyError, match="known tasks are classification"):
        task_class("clasification")


def test_checkpoint_monitor_comes_from_the_task(tmp_path):
    cfg = compose_train(["+experiment=digits_cnn"], tmp_path)
    assert cfg.callbacks.model_checkpoint.monitor == TASKS["classification"].monitor == "val/acc"
    assert cfg.callbacks.model_checkpoint.mode == cfg.callbacks.early_stopping.mode == "max"


def test_a_model_that_is_not_a_task_fails_before_any_work(tmp_path):
    cfg = compose_train(["+experiment=digits_cnn", "~model", "+model._target_=lightning.pytorch.LightningModule"],
                        tmp_path)
    with pytest.raises(ConfigError, match="is not a trainers.tasks.base.TaskModule"):
        check_config(cfg)


def test_every_evaluation_row_is_a_task_with_the_four_functions():
    from evaluation.tasks import EVALUATIONS

    assert set(EVALUATIONS) <= set(TASKS)
    for module in EVALUATIONS.values():
        assert all(callable(getattr(module, name, None)) for name in ("load", "sections", "markdown", "summary"))
        assert module.CARD_USE and module.CARD_LIMITATIONS  # MODEL_CARD.md's wording for the task


def test_every_runtime_and_export_row_is_complete():
    from runtime.tasks import TASKS as RUNTIME_TASKS
    from serving.export.package import HANDLERS_DIR
    from serving.export.tasks import EXPORTS
    from serving.scoring.writer import ARROW_TYPES, row_schema, score_rows

    assert set(EXPORTS) <= set(TASKS) and set(RUNTIME_TASKS) <= set(TASKS)
    for module in EXPORTS.values():
        assert all(callable(getattr(module, n, None)) for n in ("input_names", "dynamic_shapes", "example_args", "compare"))
    for name, module in RUNTIME_TASKS.items():
        assert all((HANDLERS_DIR / f).is_file() for f in module.HANDLER_FILES.values()), name
        assert all(kind in ARROW_TYPES for _, kind in module.SCORE_COLUMNS), name
        assert row_schema(name).names[1:-2] == [c for c, _ in module.SCORE_COLUMNS]
    from serving.scoring.writer import JOB_COLUMNS  # scoring-only jobs (perplexity): their columns, typed alike

    for name, module in JOB_COLUMNS.items():
        assert name not in RUNTIME_TASKS and all(kind in ARROW_TYPES for _, kind in module.SCORE_COLUMNS), name
        assert row_schema(name).names[1:-2] == [c for c, _ in module.SCORE_COLUMNS] and callable(module.score_columns)
    answer = {"label": "x", "probability": 0.9, "top_k": [{"label": "x", "probability": 0.9}]}
    (row,) = score_rows(["a"], [answer], "m", "1", "classification")
    assert list(row) == row_schema("classification").names
