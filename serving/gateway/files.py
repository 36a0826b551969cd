"""What the gateway keeps in its folder: nginx.conf, the secret include files (0600), the TLS pair, temp dirs,
and the nginx binary that reads them (control.py starts, reloads and stops it)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from serving.gateway.config import GatewayConfig, read_api_keys
from serving.gateway.render import KEEPER_SECRET, render_nginx, render_secrets
from serving.torchserve.client import Endpoints, ServingError, read_keys
from trainers.rundir import atomic_write_text

MODE_FILE = "run/upstream_mode"  # direct | keeper (keeper.py switches it around a token renewal)
WORKER_USER = "nobody nogroup"


def nginx_bin() -> str:
    """The nginx binary (Debian's nginx-light), or a clear error."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise ServingError("nginx not found: apt-get install nginx-light (scripts/services.sh up installs it)")
    return found


def self_signed_cert(folder: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 (openssl); key written 0600."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return cert, key


def write_config(cfg: GatewayConfig, state: dict[str, Any], upstream_mode: str | None = None) -> Path:
    """Render nginx.conf and the secrets (0600) into the gateway folder and `nginx -t` it; returns its path."""
    d = cfg.dir
    for sub in ("logs", "secrets", "tmp", "run"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "secrets").chmod(0o700)
    user = WORKER_USER if os.geteuid() == 0 else None
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        tmp = d / "tmp" / kind
        tmp.mkdir(exist_ok=True)
        if user:
            shutil.chown(tmp, "nobody", "nogroup")  # workers run unprivileged and buffer bodies here
    if cfg.tls.self_signed and not cfg.tls.cert:
        cert, key = self_signed_cert(d / "tls")
    else:
        cert, key = Path(cfg.tls.cert).resolve(), Path(cfg.tls.key).resolve()
        for path in (cert, key):
            if not path.is_file():
                raise ServingError(f"TLS file {path} does not exist (tls.cert / tls.key)")
    upstream = Endpoints.load(cfg.serve_dir).inference
    try:
        keys = read_api_keys(cfg)
    except ValueError:
        if not (d / "secrets" / "api_keys.conf").exists():
            raise
        keys = None  # a reload from a shell without the key source keeps the keys nginx already has
    secrets = render_secrets(keys or {}, read_keys(cfg.serve_dir)["inference"])
    if not (d / "secrets" / KEEPER_SECRET).exists():  # one per gateway folder, kept across reloads
        secrets[KEEPER_SECRET] = f'proxy_set_header X-Keeper-Secret "{uuid.uuid4().hex}{uuid.uuid4().hex}";\n'
    for name, text in secrets.items():
        if keys is None and name == "api_keys.conf":
            continue
        path = d / "secrets" / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    mode_file = d / MODE_FILE
    if upstream_mode is None:
        upstream_mode = mode_file.read_text().strip() if mode_file.exists() else "direct"
    atomic_write_text(mode_file, upstream_mode + "\n")
    conf = render_nginx(cfg, state["https_port"], state.get("http_port"), upstream, state["routes"],
                        cert, key, user, keys=keys or held_keys(d), upstream_mode=upstream_mode,
                        keeper_port=state["keeper_port"])
    path = d / "nginx.conf"
    atomic_write_text(path, conf)
    run_nginx(d, "-t", what="config test")  # a bad config never replaces a running one's workers
    return path


def held_keys(d: Path) -> dict[str, str]:
    """Client → key from the api_keys.conf nginx has (for sizing its hash when the key source is absent)."""
    path = d / "secrets" / "api_keys.conf"
    pairs = re.findall(r'"([^"]+)" "([^"]+)";', path.read_text()) if path.exists() else []
    return {client: key for key, client in pairs}


def run_nginx(d: Path, *args: str, what: str) -> subprocess.CompletedProcess:
    """nginx with the gateway folder as prefix; a failure raises ServingError with its stderr."""
    cmd = [nginx_bin(), "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "logs" / "error.log"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise ServingError(f"nginx {what} failed: {proc.stderr.strip()[-2000:]}")
    return proc
