"""`python -m serving COMMAND ...`: a thin dispatcher over the command modules in `serving/cli/`.

Adding commands (e.g. `registry`, `monitor`, `gateway`, `canary`) needs no edit here or in the other
command modules: create `serving/cli/<concern>.py` with

    def add_commands(subparsers) -> None:
        p = subparsers.add_parser("monitor", help="...")
        p.add_argument(...)
        add_overrides(p)                  # from serving.cli.common: trailing key=value for conf/serve.yaml
        p.set_defaults(func=run_monitor)  # run_monitor(args) -> int (exit code)

Every module in `serving/cli/` that defines `add_commands` is discovered (in name order). A command
raises `ServingError`/`ServeConfigError` for a user-facing failure: the dispatcher prints its message
(never a traceback) and exits 1.
"""
from __future__ import annotations

import sys

from serving.cli import main

if __name__ == "__main__":
    sys.exit(main())
