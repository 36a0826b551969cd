"""`start`, `stop`, `status`: the TorchServe instance itself."""
from __future__ import annotations

import argparse
from pathlib import Path

from serving.cli.common import add_overrides, print_json, serve_config
from serving.torchserve.server import TorchServeInstance, readiness

EXIT_NOT_RUNNING, EXIT_NOT_READY = 3, 4


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register start/stop/status."""
    p = subparsers.add_parser("start", help="start TorchServe; return once every --mar has a READY worker")
    p.add_argument("--mar", action="append", default=[], type=Path, help="archive to register (repeatable)")
    add_overrides(p)
    p.set_defaults(func=run_start)
    p = subparsers.add_parser("stop", help="stop TorchServe and wait until java has exited")
    add_overrides(p)
    p.set_defaults(func=run_stop)
    p = subparsers.add_parser("status", help="models, versions (default marked), workers and readiness as JSON; "
                                             "exit 0 ready, 3 not running, 4 a model version has no READY worker")
    add_overrides(p)
    p.set_defaults(func=run_status)


def run_start(args: argparse.Namespace) -> int:
    """Start the instance named by the overrides."""
    instance = TorchServeInstance(serve_config(args))
    infos = instance.start(args.mar)
    print_json({"instance": str(instance.dir), "pid": instance.pid(),
                "models": [{"name": i.name, "version": i.version} for i in infos],
                "endpoints": vars(instance.client().endpoints)})
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """Stop it (exit 0 also when it was not running, saying so)."""
    instance = TorchServeInstance(serve_config(args))
    was_running = instance.stop()
    print(f"{'stopped' if was_running else 'not running'}: {instance.dir}")
    return 0


def describe_instance(instance: TorchServeInstance) -> dict:
    """Running state and every model version with its workers (no secrets)."""
    if not instance.is_running():
        return {"instance": str(instance.dir), "running": False, "models": []}
    client = instance.client()
    models = []
    for entry in client.list_models():
        name = entry["modelName"]
        default = client.default_version(name)
        versions = [{"version": d["modelVersion"], "default": d["modelVersion"] == default,
                     "batch_size": d.get("batchSize"), "max_batch_delay": d.get("maxBatchDelay"),
                     "workers": [{"id": w.get("id"), "status": w.get("status"), "pid": w.get("pid")}
                                 for w in d.get("workers", [])]}
                    for d in client.describe(name)]
        models.append({"name": name, "default_version": default, "versions": versions})
    ready = readiness(client)
    return {"instance": str(instance.dir), "running": True, "pid": instance.pid(), "ready": ready["ready"],
            "not_ready": ready["reasons"], "endpoints": vars(client.endpoints), "models": models}


def run_status(args: argparse.Namespace) -> int:
    """Print the instance's state; exit 3 when it is not running (like service managers), 4 when not ready."""
    state = describe_instance(TorchServeInstance(serve_config(args)))
    print_json(state)
    if not state["running"]:
        return EXIT_NOT_RUNNING
    return 0 if state["ready"] else EXIT_NOT_READY
