"""The `python -m serving` command line: one module per concern, discovered by `add_commands`."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from serving.client import ServingError
from serving.server_config import ServeConfigError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered module's subcommands."""
    parser = argparse.ArgumentParser(prog="python -m serving", description="Serve Shipyard models with TorchServe.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_commands"):
            module.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and turn user-facing errors into a message and exit code 1."""
    parser = build_parser()
    # positional lists (inputs, key=value overrides) may come after options: collect what argparse left over
    args, extra = parser.parse_known_args(argv)
    target = next((name for name in ("items", "overrides") if isinstance(getattr(args, name, None), list)), None)
    if extra and (target is None or any(item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        getattr(args, target).extend(extra)
    try:
        return int(args.func(args) or 0)
    except (ServingError, ServeConfigError) as err:
        print(f"serving {args.command}: error: {err}", file=sys.stderr)
        return 1
