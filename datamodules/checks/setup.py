"""The cheap subset of the data checks, run once per training run before fit (opt out: data_checks.at_setup=false)."""
from __future__ import annotations

import logging
from typing import Any

from datamodules.checks.config import load_checks_config
from datamodules.checks.runner import DataCheckError, failure_message, run_checks

log = logging.getLogger(__name__)
SETUP_CHECKS = ("missing_values", "leakage", "class_balance")


def run_setup_checks(dm: Any, node: Any = None) -> dict[str, Any]:
    """Leakage, missing values and class balance; raise DataCheckError naming what failed and where.

    Without a `data_checks` node (a datamodule built in code, not from conf/) findings are logged as
    warnings only: the thresholds that fail a run are the ones a config sets (conf/datamodule/*.yaml).
    """
    report = run_checks(dm, node, SETUP_CHECKS)
    for name, check in report["checks"].items():
        if check["status"] != "ok":
            log.warning("data check %s: %s", name, check["summary"])
    if report["failures"] and node is None:
        log.warning(failure_message(report["failures"], f"{type(dm).__name__} setup, no thresholds configured"))
    elif report["failures"]:
        raise DataCheckError(failure_message(report["failures"], f"{type(dm).__name__} setup"))
    return report


def run_checks_before_fit(dm: Any, node: Any = None) -> dict[str, Any] | None:
    """What train() runs once, on rank 0, on the set-up datamodule before fit (None when opted out)."""
    if not load_checks_config(node).at_setup:
        return None
    own = getattr(dm, "run_data_checks", None)  # a datamodule kind with its own checks (tables) says so
    return own() if callable(own) else run_setup_checks(dm, node)
