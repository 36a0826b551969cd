"""Helpers every command module shares: `key=value` overrides of ServeConfig and JSON output."""
from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any, Sequence

from serving.torchserve.server_config import ServeConfig, compose_serve_config

_OVERRIDE = re.compile(r"^[+~]{0,2}[A-Za-z_][\w.]*=")


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Trailing `key=value` arguments, checked against ServeConfig (serving/torchserve/server_config.py)."""
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="ServeConfig overrides, e.g. instance=demo model.batch_size=8")


def is_override(item: str) -> bool:
    """`key=value` (Hydra syntax) and not an existing path."""
    return bool(_OVERRIDE.match(item)) and not os.path.exists(item)


def split_overrides(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra overrides from other positional arguments (e.g. an input file)."""
    overrides = [i for i in items if is_override(i)]
    return overrides, [i for i in items if not is_override(i)]


def serve_config(args: argparse.Namespace) -> ServeConfig:
    """The composed serve config of a parsed command line."""
    return compose_serve_config(getattr(args, "overrides", []) or [])


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    print(json.dumps(data, indent=2, sort_keys=False))
