"""Evaluate a trained run: python evaluate.py run_dir=PATH [key=value ...].

Writes RUN_DIR/report/ (report.json, report.md, PNG figures), RUN_DIR/calibration.json and
RUN_DIR/MODEL_CARD.md. Exit code: 0 when the success criterion passes, 3 when it fails, 2 for a bad config.
"""
from __future__ import annotations

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from core.rundir import RunDir
from core.schema import defaults
from evaluation.config import EvaluateConfig
from trainers.override_errors import reports_user_errors, run_with_config_errors
from trainers.resolvers import register

register()
# the one place evaluate.py's keys and defaults live is EvaluateConfig; conf/evaluate.yaml composes onto this node
ConfigStore.instance().store(name="evaluate_options", node=defaults(EvaluateConfig))


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@reports_user_errors("evaluate.py")  # a typo'd key, a missing or refused checkpoint: one line, exit 2
def main(cfg: DictConfig) -> None:
    """Validate the config, evaluate the run, exit with the verdict."""
    from evaluation.config import validate
    from evaluation.report import evaluate_run, summary_line
    from evaluation.success import EXIT_FAIL, EXIT_PASS

    cfg = validate(cfg)
    report = evaluate_run(cfg)
    print(f"evaluation: {summary_line(report)}")
    print(f"report: {RunDir(cfg.run_dir).report_md_path}")
    raise SystemExit(EXIT_PASS if report["success"]["verdict"] == "PASS" else EXIT_FAIL)


if __name__ == "__main__":
    run_with_config_errors(main, "evaluate.py", "evaluate")
