"""The cheap subset of the data checks that every datamodule runs at setup (opt out: data_checks.at_setup=false)."""
from __future__ import annotations

import logging
from typing import Any

from datamodules.checks.runner import DataCheckError, failure_message, run_checks

log = logging.getLogger(__name__)
SETUP_CHECKS = ("missing_values", "leakage", "class_balance")


def run_setup_checks(dm: Any, node: Any = None) -> dict[str, Any]:
    """Leakage, missing values and class balance; raise DataCheckError naming what failed and where."""
    report = run_checks(dm, node, SETUP_CHECKS)
    for name, check in report["checks"].items():
        if check["status"] == "warn":
            log.warning("data check %s: %s", name, check["summary"])
    if report["failures"]:
        raise DataCheckError(failure_message(report["failures"], f"{type(dm).__name__} setup"))
    return report
