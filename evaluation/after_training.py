"""The evaluation train.py runs on rank 0 after test (unless evaluate=false)."""
from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from core.rundir import RunDir
from trainers.rundir import atomic_write_text

log = logging.getLogger(__name__)


def skip_reason(cfg: DictConfig) -> str | None:
    """Why a finished run is not evaluated, or None."""
    if cfg.trainer.get("fast_dev_run"):
        return "trainer.fast_dev_run keeps no checkpoint and trains on a batch or two: nothing meaningful to evaluate"
    return None


def evaluate_after_training(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """Evaluate the run with conf/evaluate.yaml's defaults; a failure is logged and recorded, not raised.

    A failed evaluation does not undo a finished training run: the error and traceback go to the log and
    to RUN_DIR/report/evaluation_error.txt, and `python evaluate.py run_dir=...` reproduces it.
    """
    reason = skip_reason(cfg)
    if reason:
        log.info("evaluation skipped: %s", reason)
        print(f"evaluation skipped: {reason}")
        return None
    from evaluation.config import load_default
    from evaluation.report import evaluate_run, summary_line

    run = RunDir(run_dir)
    try:
        report = evaluate_run(load_default(run_dir))
    except Exception as err:  # noqa: BLE001 - recorded and logged in full below
        text = traceback.format_exc()
        atomic_write_text(run.evaluation_error_path, text)
        log.error("evaluation of %s failed: %s\n%s", run_dir, err, text)
        print(f"evaluation FAILED ({err}); see {run.evaluation_error_path} or rerun "
              f"python evaluate.py run_dir={run_dir}")
        return None
    run.evaluation_error_path.unlink(missing_ok=True)
    print(f"evaluation: {summary_line(report)}")
    return {"verdict": report["success"]["verdict"], "report": str(run.report_md_path)}
