"""Typed serving config (`ServeConfig`: the schema and its defaults) and the `config.properties` TorchServe starts from.

`compose_serve_config(overrides)` checks `key=value` overrides (like train.py's) against `ServeConfig` with
core/schema.py: an unknown key or a wrong type fails before any work, naming the key and the valid ones.
"""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from core.errors import ConfigError
from core.schema import env_default, from_overrides

METRICS_YAML = Path(__file__).resolve().parents[1] / "monitoring" / "metrics.yaml"  # serving/monitoring/
LISTENERS = ("inference", "management", "metrics", "grpc_inference", "grpc_management", "initial_worker")


class ServeConfigError(ConfigError):
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
    batch_size: int = 1            # dynamic batching: up to batch_size requests per forward ...
    max_batch_delay: int = 50      # ... waiting at most this many ms to fill a batch
    response_timeout: int = 60     # s a worker may take for one batch before TorchServe restarts it
    startup_timeout: int = 120     # s a worker may take to load the model


@dataclass
class ServerSettings:
    """Frontend-wide settings written into config.properties, plus the CLI's own deadlines."""

    start_timeout: float = 120.0        # s `start` waits for the frontend and every model's worker to be READY
    stop_timeout: float = 60.0          # s `stop` waits for the java process to exit
    token_expiration_min: float = 60.0  # minutes the keys live (the CLI and the gateway's keeper renew them)
    max_request_size: int = 6_553_500   # bytes; larger bodies get 413 from the frontend
    max_response_size: int = 6_553_500
    job_queue_size: int = 100           # requests queued per model before 503
    java_heap: str = "512m"             # -Xmx of the frontend JVM
    log_level: str = "info"             # log4j level; per-request lines (access log, metric lines) only at debug
    log_max_mb: int = 50                # every log file of the instance rotates past this size ...
    log_backups: int = 5                # ... keeping this many (logs/*.N.log); the launcher log rotates at start


@dataclass
class ServeConfig:
    """Everything `python -m serving <command> [key=value ...]` needs to run one TorchServe instance."""

    root: str = env_default("SHIPYARD_SERVE_ROOT", "outputs/serve")  # instances live in <root>/<instance>/
    instance: str = "default"  # one folder per server: config.properties, key_file.json, logs/, tmp/, model-store/
    host: str = "127.0.0.1"    # loopback only; put the gateway (nginx) in front for anything else
    ports: Ports = field(default_factory=Ports)                  # 0 = a free port chosen at start
    model: ModelSettings = field(default_factory=ModelSettings)  # what `register` (and `start --mar`) asks for
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
    """`key=value` overrides → a validated ServeConfig (defaults: the dataclasses above)."""
    return from_overrides(ServeConfig, overrides, error=ServeConfigError)


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
    header = "# written by `python -m serving start` from ServeConfig; regenerated at every start\n"
    return header + "".join(f"{k}={v}\n" for k, v in lines.items())
