"""`monitor`: drift of logged predictions against the training reference (exit 3 on drift)."""
from __future__ import annotations

import argparse

from core.errors import ConfigError
from serving.torchserve.client import ServingError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `monitor`."""
    p = subparsers.add_parser("monitor", help="drift report: reference=RUN_DIR current=LOG_DIR [key=value ...] "
                                              "(MonitorConfig); exit 3 past the thresholds")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="MonitorConfig overrides (serving/monitoring/monitor.py)")
    p.set_defaults(func=run_monitor)


def run_monitor(args: argparse.Namespace) -> int:
    """Run the drift check; user errors become one-line messages."""
    from serving.monitoring.monitor import main

    try:
        return main(list(args.overrides))
    except ConfigError:  # a typo'd key: the standard message and exit 2 (serving/cli/__init__.py)
        raise
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise ServingError(str(err)) from err
