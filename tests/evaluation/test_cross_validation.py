"""`python train.py +experiment=X cv.folds=K`: K fold runs as one Hydra multirun and a cv_summary."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_entry


@pytest.mark.slow
def test_cv_folds_run_as_multirun_with_summary(tmp_path: Path) -> None:
    proc = run_entry("train.py", "+experiment=digits_cnn", "cv.folds=2", f"paths.output_root={tmp_path}",
                     "trainer.max_epochs=1", "trainer.limit_train_batches=4", "callbacks.progress_bar=null",
                     "evaluate=false")
    assert "cross-validation summary" in proc.stdout
    summaries = list((tmp_path / "digits_cnn" / "multirun").glob("*/cv_summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["completed"] == [0, 1] and summary["missing"] == []
    runs = [Path(r["run_dir"]) for r in summary["per_fold"]]
    assert len(set(runs)) == 2  # each fold has its own run directory (no run id inherited from the last job)
    tests = [set(json.loads((r / "data" / "splits.json").read_text())["test"]) for r in runs]
    assert not tests[0] & tests[1] and len(tests[0] | tests[1]) == 1797  # the folds' test sets partition digits
    acc = [r["metrics"]["test/acc"] for r in summary["per_fold"]]
    assert summary["metrics"]["test/acc"]["mean"] == pytest.approx(sum(acc) / 2)
    assert "± " in summaries[0].with_suffix(".md").read_text()
    assert json.loads((runs[0] / "cv_summary.json").read_text())["folds"] == 2
