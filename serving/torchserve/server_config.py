"""Typed serving config (`conf/serve.yaml`) and the `config.properties` TorchServe starts from.

`compose_serve_config(overrides)` composes `conf/serve.yaml` with Hydra's compose API (so the CLI takes
`key=value` overrides like train.py) and merges it into the `ServeConfig` dataclass: an unknown key or a
wrong type fails before any work, naming the key.
"""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # serving/torchserve/ → repo root
METRICS_YAML = Path(__file__).resolve().parents[1] / "monitoring" / "metrics.yaml"  # serving/monitoring/
LISTENERS = ("inference", "management", "metrics", "grpc_inference", "grpc_management", "initial_worker")


class ServeConfigError(ValueError):
    """A serving config problem; the message names the key and the fix."""


@dataclass
class Ports:
    """Ports of the five listeners and the first backend worker port; 0 picks a free one at start."""

    inference: int = 0
    management: int = 0
    metrics: int = 0
    grpc_inference: int = 0
    grpc_management: int = 0
    initial_worker: int = 0


@dataclass
class ModelSettings:
    """Per model version: workers, dynamic batching and timeouts (sent with the register call)."""

    workers: int = 1
    batch_size: int = 1
    max_batch_delay: int = 50
    response_timeout: int = 60
    startup_timeout: int = 120


@dataclass
class ServerSettings:
    """Frontend-wide settings written into config.properties, plus the CLI's own deadlines."""

    start_timeout: float = 120.0
    stop_timeout: float = 60.0
    token_expiration_min: float = 60.0
    max_request_size: int = 6_553_500
    max_response_size: int = 6_553_500
    job_queue_size: int = 100
    java_heap: str = "512m"
    log_level: str = "info"
    log_max_mb: int = 50
    log_backups: int = 5


@dataclass
class ServeConfig:
    """Everything `python -m serving` needs to run one TorchServe instance."""

    root: str = "outputs/serve"
    instance: str = "default"
    host: str = "127.0.0.1"
    ports: Ports = field(default_factory=Ports)
    model: ModelSettings = field(default_factory=ModelSettings)
    server: ServerSettings = field(default_factory=ServerSettings)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.instance):
            raise ServeConfigError(f"instance={self.instance!r}: use letters, digits, '_', '-', '.' (it names a folder)")
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ServeConfigError(f"host={self.host!r}: TorchServe is served on loopback only; "
                                   "expose it through the gateway instead")
        m = self.model
        for name in ("workers", "batch_size", "response_timeout", "startup_timeout"):
            if getattr(m, name) < 1:
                raise ServeConfigError(f"model.{name}={getattr(m, name)}: must be >= 1")
        if m.max_batch_delay < 0:
            raise ServeConfigError(f"model.max_batch_delay={m.max_batch_delay}: must be >= 0 ms")
        for name in LISTENERS:
            port = getattr(self.ports, name)
            if not 0 <= port <= 65535:
                raise ServeConfigError(f"ports.{name}={port}: must be 0 (free port) or 1..65535")
        s = self.server
        if s.log_level not in ("error", "warn", "info", "debug"):
            raise ServeConfigError(f"server.log_level={s.log_level!r}: use error, warn, info or debug")
        if s.log_max_mb < 1 or s.log_backups < 1:
            raise ServeConfigError("server.log_max_mb and server.log_backups must be >= 1")
        if s.token_expiration_min <= 0:
            raise ServeConfigError(f"server.token_expiration_min={s.token_expiration_min}: must be > 0 minutes")
        if not re.fullmatch(r"[0-9]+[kmgKMG]?", self.server.java_heap):
            raise ServeConfigError(f"server.java_heap={self.server.java_heap!r}: use a JVM size such as 512m or 2g")

    @property
    def instance_dir(self) -> Path:
        """The server's own folder."""
        return Path(self.root).resolve() / self.instance


def compose_serve_config(overrides: Sequence[str] = ()) -> ServeConfig:
    """conf/serve.yaml + `key=value` overrides → a validated ServeConfig."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("serve", overrides=list(overrides))
    except HydraException as err:
        first = str(err).splitlines()[0]
        raise ServeConfigError(f"bad override in {list(overrides)}: {first} (conf/serve.yaml has no such key, "
                               f"or the value has the wrong type). Valid keys: {valid_keys()}") from err
    finally:
        GlobalHydra.instance().clear()
    return to_serve_config(OmegaConf.to_container(cfg, resolve=True))


def to_serve_config(data: dict) -> ServeConfig:
    """Plain dict → ServeConfig; unknown keys and wrong types name the key and the valid ones."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ServeConfig), data)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        msg = str(err).splitlines()[0]
        key = getattr(err, "full_key", None)
        raise ServeConfigError(f"serve config{f' key {key}' if key else ''}: {msg}. Valid keys: {valid_keys()}") from err


def valid_keys() -> list[str]:
    """Every dotted key of conf/serve.yaml, for error messages."""
    groups = {"ports": Ports, "model": ModelSettings, "server": ServerSettings}
    return [f"{f.name}.{g.name}" for f in fields(ServeConfig) if f.name in groups for g in fields(groups[f.name])] + \
        [f.name for f in fields(ServeConfig) if f.name not in groups]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def resolve_ports(ports: Ports, host: str) -> Ports:
    """Replace every 0 by a distinct free port; refuse explicit ports that are taken or repeated."""
    chosen: dict[str, int] = {}
    for name in LISTENERS:
        port = getattr(ports, name)
        if port:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError as err:
                    raise ServeConfigError(f"ports.{name}={port} is in use ({err}); pick another or 0") from err
        else:
            port = free_port(host)
            while port in chosen.values():
                port = free_port(host)
        if port in chosen.values():
            raise ServeConfigError(f"ports.{name}={port} repeats another listener's port")
        chosen[name] = port
    return Ports(**chosen)


def render_properties(cfg: ServeConfig, ports: Ports, model_store: Path) -> str:
    """The config.properties of one instance: loopback listeners, token auth on, no snapshots."""
    store = model_store.resolve()
    # only archives inside this model store may be registered (the default allows any file:// URL)
    allowed = "file://" + re.escape(str(store)) + "/[^/]+\\.mar"
    base = f"http://{cfg.host}"
    s = cfg.server
    lines = {
        "inference_address": f"{base}:{ports.inference}",
        "management_address": f"{base}:{ports.management}",
        "metrics_address": f"{base}:{ports.metrics}",
        "grpc_inference_address": cfg.host,
        "grpc_inference_port": ports.grpc_inference,
        "grpc_management_address": cfg.host,
        "grpc_management_port": ports.grpc_management,
        "initial_worker_port": ports.initial_worker,
        "model_store": store,
        "allowed_urls": allowed.replace("\\", "\\\\"),  # .properties unescapes backslashes once
        "metrics_mode": "prometheus",
        # prometheus mode exports only declared metrics: TorchServe's defaults + the handlers' own
        "metrics_config": METRICS_YAML,
        "enable_model_api": "true",
        "disable_token_authorization": "false",
        "token_expiration_min": s.token_expiration_min,
        "enable_envvars_config": "false",
        "install_py_dep_per_model": "false",
        "default_workers_per_model": cfg.model.workers,
        "default_response_timeout": cfg.model.response_timeout,
        "default_startup_timeout": cfg.model.startup_timeout,
        "max_request_size": s.max_request_size,
        "max_response_size": s.max_response_size,
        "job_queue_size": s.job_queue_size,
        "vmargs": f"-Xmx{s.java_heap} -XX:+UseContainerSupport -XX:+ExitOnOutOfMemoryError",
    }
    header = "# written by `python -m serving start` from conf/serve.yaml; regenerated at every start\n"
    return header + "".join(f"{k}={v}\n" for k, v in lines.items())
