"""The gateway's typed config (GatewayConfig: schema and defaults), its folder layout and its secrets (read, never logged)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.schema import env_default

ENV_KEYS = "SHIPYARD_GATEWAY_API_KEYS"
_SIZE = re.compile(r"[0-9]+[kKmM]?")
# >= 128 bits as hex (openssl rand -hex 16); nginx's map hash is sized from the longest key (render.py)
MIN_KEY, MAX_KEY = 32, 256


@dataclass
class TLSConfig:
    """Certificate and key (PEM) for the HTTPS listener."""

    cert: str | None = None   # PEM certificate; null with self_signed=true → generated into <instance>/tls/
    key: str | None = None
    self_signed: bool = False  # generate a self-signed certificate with openssl (tests, local use)


@dataclass
class RateLimit:
    """Per-API-key request rate (nginx limit_req)."""

    per_second: int = 20   # steady requests per second per API key ...
    burst: int = 10        # ... plus this many queued-free extra (beyond: 429)
    # wrong/missing API keys, per client address: guessing keys costs time (beyond: 429)
    # requests one key may have in flight: with the pixel/size limits this caps the CPU one key holds
    concurrent: int = 8
    auth_failures_per_second: int = 2
    auth_failures_burst: int = 10


@dataclass
class GatewayConfig:
    """python -m serving gateway start|reload|stop|status|route [key=value ...] (the schema and its defaults)."""

    root: str = env_default("SHIPYARD_GATEWAY_ROOT", "outputs/gateway")  # gateways live in <root>/<instance>/
    instance: str = "default"
    host: str = "127.0.0.1"   # listen address; put a real load balancer/firewall in front for public traffic
    https_port: int = 0       # 0 = a free port chosen at start (recorded in gateway.json)
    http_port: int = 0        # plain HTTP: answers 308 → https (never proxies); -1 = no HTTP listener at all
    tls: TLSConfig = field(default_factory=TLSConfig)
    api_keys_file: str | None = None  # lines "client_id:key" (or "key"); else $SHIPYARD_GATEWAY_API_KEYS ("id:key,...")
    rate_limit: RateLimit = field(default_factory=RateLimit)
    max_body: str = "1m"      # larger request bodies get 413 before they reach TorchServe
    upstream_timeout: int = 30  # s nginx waits for TorchServe
    server_name: str | None = None   # the name clients use (redirects, Host); null = host
    client_timeout: int = 10         # s between two reads of a client's header/body, and between writes to it
    max_connections_per_ip: int = 64  # open connections one client address may hold (slow clients)
    hsts_max_age: int = 63072000     # Strict-Transport-Security max-age (s); 0 = no header
    log_max_mb: int = 50             # nginx's access/error logs rotate past this size (the keeper renames them)
    log_backups: int = 5             # rotated logs kept per file
    token_check_interval: float = 1.0  # s between the token keeper's checks of TorchServe's inference key
    serve_root: str = env_default("SHIPYARD_SERVE_ROOT", "outputs/serve")  # the TorchServe instance behind it
    serve_instance: str = "default"
    canary_percent: float = 10.0  # default share of traffic for a model's candidate version (route ... candidate=V)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.instance):
            raise ValueError(f"instance={self.instance!r}: use letters, digits, '_', '-', '.'")
        if not _SIZE.fullmatch(self.max_body):
            raise ValueError(f"max_body={self.max_body!r}: use an nginx size such as 512k or 1m")
        if self.rate_limit.per_second < 1 or self.rate_limit.burst < 0:
            raise ValueError("rate_limit.per_second must be >= 1 and rate_limit.burst >= 0")
        if self.rate_limit.concurrent < 1:
            raise ValueError("rate_limit.concurrent must be >= 1 (requests one API key may have in flight)")
        if self.rate_limit.auth_failures_per_second < 1 or self.rate_limit.auth_failures_burst < 0:
            raise ValueError("rate_limit.auth_failures_per_second must be >= 1 and rate_limit.auth_failures_burst >= 0")
        if self.log_max_mb < 1 or self.log_backups < 1 or self.token_check_interval <= 0:
            raise ValueError("log_max_mb and log_backups must be >= 1, token_check_interval > 0")
        if self.client_timeout < 1 or self.max_connections_per_ip < 1 or self.hsts_max_age < 0:
            raise ValueError("client_timeout and max_connections_per_ip must be >= 1, hsts_max_age >= 0")
        if self.server_name is not None and not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]", self.server_name):
            raise ValueError(f"server_name={self.server_name!r}: a DNS name or address (no scheme, no port)")
        if not 0 <= self.canary_percent <= 100:
            raise ValueError(f"canary_percent={self.canary_percent}: must be within [0, 100]")

    def check_tls(self) -> None:
        """The gateway only speaks HTTPS: a certificate is required to start it."""
        if not self.tls.self_signed and not (self.tls.cert and self.tls.key):
            raise ValueError("TLS is required: set tls.cert=PEM and tls.key=PEM, or tls.self_signed=true")

    @property
    def dir(self) -> Path:
        """The gateway's own folder (nginx prefix)."""
        return Path(self.root).resolve() / self.instance

    @property
    def public_name(self) -> str:
        """The host name redirects point to (never the client's Host header)."""
        return self.server_name or self.host

    @property
    def serve_dir(self) -> Path:
        """The TorchServe instance folder behind the gateway."""
        return Path(self.serve_root).resolve() / self.serve_instance


def read_api_keys(cfg: GatewayConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """client id → key, from api_keys_file or $SHIPYARD_GATEWAY_API_KEYS; empty is an error."""
    environ = os.environ if environ is None else environ
    if cfg.api_keys_file:
        path = Path(cfg.api_keys_file)
        if not path.is_file():
            raise FileNotFoundError(f"api_keys_file={path} does not exist")
        entries = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    else:
        entries = [e.strip() for e in environ.get(ENV_KEYS, "").split(",") if e.strip()]
    keys: dict[str, str] = {}
    for n, entry in enumerate(entries, start=1):
        client, _, key = entry.rpartition(":") if ":" in entry else (f"client{n}", "", entry)
        if not re.fullmatch(r"[A-Za-z0-9_.~+/=-]{%d,%d}" % (MIN_KEY, MAX_KEY), key):
            # never echo the value: it is a secret
            raise ValueError(f"API key #{n} ({client or 'unnamed'}) must be {MIN_KEY}-{MAX_KEY} characters of "
                             "[A-Za-z0-9_.~+/=-]: make one with `openssl rand -hex 32`")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", client):
            raise ValueError(f"API key #{n}: client id {client!r} may use letters, digits, '_', '-', '.'")
        keys[client] = key
    if not keys:
        raise ValueError(f"no gateway API keys: set api_keys_file=PATH or ${ENV_KEYS}=id:key,...")
    return keys
