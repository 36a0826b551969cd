"""Where evaluation reads and writes inside a run directory (one place, shared by every module)."""
from __future__ import annotations

from pathlib import Path

REPORT_DIR = "report"                   # RUN_DIR/report/: report.json, report.md, *.png
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CALIBRATION_JSON = "calibration.json"   # RUN_DIR/calibration.json: export reads "temperature" from it
DATA_CHECKS_DIR = "data_checks"         # RUN_DIR/data_checks/: written by python -m datamodules.validate
DATA_REPORT_JSON = "data_report.json"
DATA_REPORT_MD = "data_report.md"
MODEL_CARD = "MODEL_CARD.md"


def report_dir(run_dir: str | Path) -> Path:
    """RUN_DIR/report."""
    return Path(run_dir) / REPORT_DIR


def calibration_path(run_dir: str | Path) -> Path:
    """RUN_DIR/calibration.json."""
    return Path(run_dir) / CALIBRATION_JSON


def data_checks_dir(run_dir: str | Path) -> Path:
    """RUN_DIR/data_checks."""
    return Path(run_dir) / DATA_CHECKS_DIR
