"""Make a registry version what TorchServe (and the gateway) serve: verify sha256, register, switch default."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.schema import env_default
from serving.torchserve.client import ServingError
from serving.registry.store import ModelRegistry, RegistryConfig


@dataclass
class RegistryCLIConfig:
    """python -m serving registry register run_dir=PATH | promote NAME VERSION | rollback NAME | list | show NAME."""

    registry: RegistryConfig = field(default_factory=RegistryConfig)
    run_dir: str | None = None   # register: the run to register (its export/ must exist: python export.py run_dir=...)
    name: str | None = None      # register: registered model name (default: the export's model name)
    cache: str | None = None     # verified downloads (default: <registry.root>/cache)
    switch_serving: str | bool = "auto"  # promote/rollback: auto (switch TorchServe + gateway when they run) | true | false
    serve_root: str = env_default("SHIPYARD_SERVE_ROOT", "outputs/serve")
    serve_instance: str = "default"
    gateway_root: str = env_default("SHIPYARD_GATEWAY_ROOT", "outputs/gateway")
    gateway_instance: str = "default"

    def __post_init__(self) -> None:
        self.switch_serving = str(self.switch_serving).lower()  # Hydra reads a bare false as a bool
        if self.switch_serving not in ("auto", "true", "false"):
            raise ValueError(f"switch_serving={self.switch_serving!r}: use auto, true or false")

    @property
    def cache_dir(self) -> Path:
        """Where verified downloads go."""
        return Path(self.cache) if self.cache else Path(self.registry.root).resolve() / "cache"


def verified_archive(reg: ModelRegistry, cfg: RegistryCLIConfig, name: str, version: str) -> Path:
    """Download + sha256-check a version; returns its .mar (TamperedArtifactError if anything differs)."""
    folder = reg.fetch_verified(name, version, cfg.cache_dir / name / str(version))
    return reg.archive(folder, name, version)


def _instance(cfg: RegistryCLIConfig):
    from serving.torchserve.server import TorchServeInstance
    from serving.torchserve.server_config import compose_serve_config

    serve = compose_serve_config([f"root={cfg.serve_root}", f"instance={cfg.serve_instance}"])
    return TorchServeInstance(serve)


def deploy(reg: ModelRegistry, cfg: RegistryCLIConfig, name: str, version: str, make_default: bool) -> dict[str, Any]:
    """Verify, then (if a server runs) register the version in TorchServe and optionally make it the default."""
    mar = verified_archive(reg, cfg, name, version)  # always verified, even when nothing is switched
    serving_version = reg.version(name, version).tags["serving.version"]
    out: dict[str, Any] = {"verified": True, "serving_version": serving_version, "torchserve": None, "gateway": None}
    if cfg.switch_serving == "false":
        return out
    instance = _instance(cfg)
    if not instance.is_running():
        if cfg.switch_serving == "true":
            raise ServingError(f"switch_serving=true but no TorchServe runs in {instance.dir}")
        return out
    from serving.torchserve.model_store import register_archive

    client = instance.client()
    known = {m["modelName"] for m in client.list_models()}
    versions = {d.get("modelVersion") for d in client.describe(name)} if name in known else set()
    if serving_version not in versions:
        deadline = time.monotonic() + instance.cfg.server.start_timeout
        register_archive(client, mar, instance.cfg.model, deadline, instance.is_running, name=name,
                         version=serving_version)
    if make_default:
        client.set_default(name, serving_version)
    out["torchserve"] = {"instance": str(instance.dir), "default_version": client.default_version(name)}
    return out


def switch_gateway(cfg: RegistryCLIConfig, name: str, champion: str) -> dict[str, Any] | None:
    """Point a running gateway's champion route at the new version (the canary candidate is cleared)."""
    from serving.gateway.config import GatewayConfig
    from serving.gateway.control import Gateway, load_running_config

    gw = Gateway(load_running_config(GatewayConfig(root=cfg.gateway_root, instance=cfg.gateway_instance)))
    if not gw.pid() or cfg.switch_serving == "false":
        return None
    return gw.set_route(name, champion=champion, clear_candidate=True)
