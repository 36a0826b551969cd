"""`monitor`: drift of logged predictions against the training reference (exit 3 on drift)."""
from __future__ import annotations

import argparse

from serving.torchserve.client import ServingError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `monitor`."""
    p = subparsers.add_parser("monitor", help="drift report: reference=RUN_DIR current=LOG_DIR [key=value ...] "
                                              "(conf/monitor.yaml); exit 3 past the thresholds")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of conf/monitor.yaml")
    p.set_defaults(func=run_monitor)


def run_monitor(args: argparse.Namespace) -> int:
    """Run the drift check; user errors become one-line messages."""
    from serving.monitoring.monitor import main

    try:
        return main(list(args.overrides))
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise ServingError(str(err)) from err
