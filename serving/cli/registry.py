"""`registry register|promote|rollback|list|show|verify`: model versions on MLflow's registry (RegistryCLIConfig)."""
from __future__ import annotations

import argparse

from core.errors import ConfigError
from serving.cli.common import print_json, split_overrides
from serving.torchserve.client import ServingError

USAGE = {"register": 0, "promote": 2, "rollback": 1, "list": 0, "show": (1, 2), "verify": 2, "deploy": 2}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `registry`."""
    p = subparsers.add_parser(
        "registry", help="model registry (MLflow): register run_dir=PATH | promote NAME VERSION | rollback NAME | "
                         "list | show NAME [VERSION] | verify NAME VERSION | deploy NAME VERSION")
    p.add_argument("action", choices=sorted(USAGE))
    p.add_argument("items", nargs="*", metavar="ARG|KEY=VALUE", help="arguments, then RegistryCLIConfig overrides (serving/registry/deploy.py)")
    p.set_defaults(func=run_registry)


def run_registry(args: argparse.Namespace) -> int:
    """Dispatch; user-facing failures (bad input, tampered artifacts) become one-line errors."""
    from serving.registry.integrity import TamperedArtifactError
    from serving.registry.store import RegistryError

    overrides, rest = split_overrides(args.items)
    expected = USAGE[args.action]
    if len(rest) not in (expected if isinstance(expected, tuple) else (expected,)):
        raise ServingError(f"registry {args.action}: expected {expected} positional argument(s), got {rest}")
    try:
        print_json(_dispatch(args.action, rest, overrides))
    except ConfigError:  # a typo'd key: the standard message and exit 2 (serving/cli/__init__.py)
        raise
    except (RegistryError, TamperedArtifactError, ValueError, FileNotFoundError) as err:
        raise ServingError(str(err)) from err
    return 0


def _dispatch(action: str, rest: list[str], overrides: list[str]) -> object:
    from serving.registry.deploy import RegistryCLIConfig, deploy, switch_gateway, verified_archive
    from serving.registry.store import ModelRegistry
    from core.schema import from_overrides

    cfg = from_overrides(RegistryCLIConfig, overrides)
    reg = ModelRegistry(cfg.registry)
    if action == "register":
        if not cfg.run_dir:
            raise ValueError("registry register needs run_dir=PATH (a run exported with python export.py)")
        from pathlib import Path

        return reg.register(Path(cfg.run_dir), cfg.name)
    if action == "list":
        return reg.list()
    if action == "show":
        return reg.show(*rest)
    name = rest[0]
    if action == "verify":
        return {"name": name, "version": rest[1], "archive": str(verified_archive(reg, cfg, name, rest[1])),
                "verified": True}
    if action == "deploy":  # serve a version beside the champion (e.g. as the canary candidate)
        return {"name": name, "version": rest[1], **deploy(reg, cfg, name, rest[1], make_default=False)}
    target = rest[1] if action == "promote" else reg.rollback_target(name)
    # verified and switched BEFORE the alias moves: a refused or failed switch leaves the registry as it was
    served = deploy(reg, cfg, name, target, make_default=True)
    served["gateway"] = switch_gateway(cfg, name, served["serving_version"])
    moved = reg.promote(name, target) if action == "promote" else reg.rollback(name)
    return {**moved, **served}
