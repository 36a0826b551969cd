"""Data checks: python -m datamodules.validate +experiment=NAME [run_dir=PATH] [datamodule.key=value ...].

Composes the training config, sets the datamodule up (setup runs no checks) and runs the full set of checks and writes data_report.json / data_report.md / plots into
<paths.output_root>/<name>/data_checks/, or RUN_DIR/data_checks/ with run_dir=. Exit code 1 when a
configured threshold fails (the message names the check and where), 0 otherwise.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from core.rundir import RunDir
from trainers.override_errors import reports_user_errors, run_with_config_errors
from trainers.resolvers import REPO_ROOT, register

register()
_RUN_DIR: list[str] = []  # `run_dir=PATH` is taken off the command line: it is not a key of the train config


@hydra.main(version_base="1.3", config_path=str(REPO_ROOT / "conf"), config_name="train")
@reports_user_errors("datamodules.validate")  # a wrong column, missing data: one line, exit 2
def main(cfg: DictConfig) -> None:
    """Compose like train.py, run every check, write the data report."""
    from hydra.utils import instantiate

    from datamodules.checks.runner import failure_message

    run_dir = _RUN_DIR[0] if _RUN_DIR else None
    validate_run_config(cfg, run_dir)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("fit")
    out_dir = RunDir(run_dir).data_checks_dir if run_dir else RunDir(Path(cfg.paths.output_root) / cfg.name).data_checks_dir
    report, path = check_datamodule(datamodule, cfg, out_dir)
    for name, check in report["checks"].items():
        print(f"{name:17s} {check['status']:5s} {check['summary']}")
    print(f"data report: {path}")
    if report["failures"]:
        print(failure_message(report["failures"], "python -m datamodules.validate"), file=sys.stderr)
        raise SystemExit(1)


def check_datamodule(datamodule: Any, cfg: DictConfig, out_dir: Path) -> tuple[dict[str, Any], Path]:
    """The checks that fit the datamodule's kind of data, and the data report they wrote into out_dir."""
    from datamodules.checks.runner import run_checks, write_report

    if getattr(datamodule, "roles", None) is not None:  # datamodule=tabular: the table checks
        from datamodules.checks.tables import run_table_checks, write_table_report

        report = run_table_checks(datamodule, cfg.datamodule.data_checks)
        return report, write_table_report(report, out_dir)
    from datamodules.tokens import TokensDataModule

    # every datamodule has run_data_checks (train() calls it); only token streams skip the per-item checks below
    if isinstance(datamodule, TokensDataModule):  # datamodule=tokens: the tokenization's rejects, the splits
        checks = datamodule.run_data_checks()
        report = {"datamodule": cfg.datamodule._target_, "passed": not checks["failures"], "items": checks["records"],
                  **checks, "_items": []}  # token streams have no per-item statistics to plot
        return report, write_report(report, out_dir, plots=False)
    report = run_checks(datamodule, cfg.datamodule.data_checks)
    return report, write_report(report, out_dir)


def validate_run_config(cfg: DictConfig, run_dir: str | None) -> None:
    """With run_dir=, the composed datamodule must be the one the run trained on (else the report misleads)."""
    if not run_dir:
        return
    run = RunDir(run_dir)
    if not run.is_run():
        raise SystemExit(f"run_dir={run_dir} has no config.yaml: not a Shipyard run directory")
    trained = run.read_config().datamodule.get("_target_")
    if trained != cfg.datamodule._target_:
        raise SystemExit(f"run_dir={run_dir} trained with {trained}, but this config composes {cfg.datamodule._target_}: "
                         "pass the run's +experiment=")


if __name__ == "__main__":
    for arg in list(sys.argv[1:]):
        if arg.startswith("run_dir="):
            _RUN_DIR.append(arg.split("=", 1)[1])
            sys.argv.remove(arg)
    run_with_config_errors(main, "datamodules.validate", "train")
