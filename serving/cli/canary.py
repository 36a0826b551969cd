"""`canary report`: champion vs candidate over the same window → promote (0) / rollback (3) / wait (4)."""
from __future__ import annotations

import argparse

from core.errors import ConfigError
from serving.torchserve.client import ServingError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `canary`."""
    p = subparsers.add_parser("canary", help="canary report model_name=NAME [key=value ...] (CanaryConfig): "
                                             "exit 0 promote, 3 roll back, 4 not enough data")
    p.add_argument("action", choices=["report"])
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="CanaryConfig overrides (serving/monitoring/canary.py)")
    p.set_defaults(func=run_canary)


def run_canary(args: argparse.Namespace) -> int:
    """Run the comparison; user errors become one-line messages."""
    from serving.monitoring.canary import main

    try:
        return main(list(args.overrides))
    except ConfigError:  # a typo'd key: the standard message and exit 2 (serving/cli/__init__.py)
        raise
    except (ValueError, FileNotFoundError) as err:
        raise ServingError(str(err)) from err
