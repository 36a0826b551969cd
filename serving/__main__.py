"""`python -m serving COMMAND ...`: one explicit table of commands over the modules in `serving/cli/`.

Adding a command: write `add_commands(subparsers)` in a `serving/cli/<concern>.py` module (one
`subparsers.add_parser(NAME, ...)` + `set_defaults(func=run)` per command; `run(args) -> int`), then
add one row per command NAME to `COMMANDS` below. A command raises `ServingError` for a
user-facing failure (the dispatcher prints its message, never a traceback, and exits 1) and lets a config
error (`core.errors.ConfigError`, e.g. a typo'd key) through: exit 2.
"""
from __future__ import annotations

import sys
from types import ModuleType

from serving.cli import canary, gateway, lifecycle, main, models, monitor, predict, registry

# command name -> the module whose add_commands() registers it (checked against what it registers)
COMMANDS: dict[str, ModuleType] = {
    "start": lifecycle,
    "stop": lifecycle,
    "status": lifecycle,
    "register": models,
    "set-default": models,
    "unregister": models,
    "predict": predict,
    "registry": registry,
    "gateway": gateway,
    "canary": canary,
    "monitor": monitor,
}

if __name__ == "__main__":
    sys.exit(main(COMMANDS))
