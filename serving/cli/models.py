"""`register`, `set-default`, `unregister`: model versions on a running instance."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from serving.cli.common import add_overrides, print_json, serve_config
from serving.torchserve.client import ServingError
from serving.torchserve.model_store import register_archive
from serving.torchserve.server import TorchServeInstance


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register register/set-default/unregister."""
    p = subparsers.add_parser("register", help="copy a .mar into the model store, register it, wait for READY "
                                               "(batching from model.batch_size=, model.max_batch_delay=, ...)")
    p.add_argument("mar", type=Path, help="the archive (export.py writes one per version)")
    p.add_argument("--name", help="served model name (default: the archive's)")
    p.add_argument("--version", help="expected version (must match the archive's)")
    p.add_argument("--set-default", action="store_true", help="make it the default version once READY")
    add_overrides(p)
    p.set_defaults(func=run_register)
    p = subparsers.add_parser("set-default", help="make VERSION the one /predictions/NAME answers with")
    p.add_argument("name")
    p.add_argument("version")
    add_overrides(p)
    p.set_defaults(func=run_set_default)
    p = subparsers.add_parser("unregister", help="remove one version of a model")
    p.add_argument("name")
    p.add_argument("version")
    add_overrides(p)
    p.set_defaults(func=run_unregister)


def _running(args: argparse.Namespace) -> TorchServeInstance:
    instance = TorchServeInstance(serve_config(args))
    if not instance.is_running():
        raise ServingError(f"no TorchServe running for {instance.dir}: `python -m serving start` first")
    return instance


def run_register(args: argparse.Namespace) -> int:
    """Register one archive version with the configured workers and batching."""
    instance = _running(args)
    client = instance.client()
    deadline = time.monotonic() + instance.cfg.server.start_timeout
    info = register_archive(client, args.mar, instance.cfg.model, deadline, instance.is_running,
                            name=args.name, version=args.version)
    if args.set_default:
        client.set_default(info.name, info.version)
    print_json({"name": info.name, "version": info.version, "store_file": info.path.name,
                "default_version": client.default_version(info.name)})
    return 0


def run_set_default(args: argparse.Namespace) -> int:
    """Switch (or roll back) the default version."""
    client = _running(args).client()
    versions = {d["modelVersion"] for d in client.describe(args.name)}
    if args.version not in versions:
        raise ServingError(f"{args.name} has no version {args.version!r}; registered: {sorted(versions)}")
    client.set_default(args.name, args.version)
    print_json({"name": args.name, "default_version": client.default_version(args.name)})
    return 0


def run_unregister(args: argparse.Namespace) -> int:
    """Remove a version (the default only when it is the last one)."""
    client = _running(args).client()
    client.unregister(args.name, args.version)
    print_json({"name": args.name, "unregistered": args.version})
    return 0
