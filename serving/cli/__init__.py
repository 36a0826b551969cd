"""The `python -m serving` command line: one module per concern; the table of commands is in `serving/__main__.py`."""
from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Mapping, Sequence

from core.errors import UserError
from serving.torchserve.client import ServingError


def build_parser(commands: Mapping[str, ModuleType]) -> argparse.ArgumentParser:
    """The top-level parser with the subcommands of the table's modules (each module registered once)."""
    parser = argparse.ArgumentParser(prog="python -m serving", description="Serve Shipyard models with TorchServe.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in dict.fromkeys(commands.values()):
        module.add_commands(subparsers)
    registered = set(subparsers.choices)
    if registered != set(commands):  # a module registers a command the table does not list, or the reverse
        raise RuntimeError(f"serving/__main__.py COMMANDS lists {sorted(commands)} but the modules register "
                           f"{sorted(registered)}: keep the table and the modules in step")
    return parser


def main(commands: Mapping[str, ModuleType], argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and turn user-facing errors into a message and exit code 1."""
    parser = build_parser(commands)
    # positional lists (inputs, key=value overrides) may come after options: collect what argparse left over
    args, extra = parser.parse_known_args(argv)
    target = next((name for name in ("items", "overrides") if isinstance(getattr(args, name, None), list)), None)
    if extra and (target is None or any(item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        getattr(args, target).extend(extra)
    try:
        return int(args.func(args) or 0)
    except UserError as err:  # a config typo or wrong value (ServeConfigError too): exit 2, like train.py
        print(f"serving {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except ServingError as err:
        print(f"serving {args.command}: error: {err}", file=sys.stderr)
        return 1
