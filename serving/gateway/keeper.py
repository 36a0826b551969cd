"""The gateway's token keeper: renews TorchServe's inference token before it expires, without a failed request.

TorchServe 0.12 holds ONE inference key; renewing it (`POST /token?type=inference`) invalidates the old
one at once, while nginx can only hold a token it read from its config. So a renewal is a handover:

1. reload nginx with predictions routed through this process (`upstream_mode=keeper`), which adds the
   *current* token per request; wait until the previous nginx workers (which hold the old token) exit;
2. renew the key (forwarded requests wait on a lock for that moment) and read the new one;
3. reload nginx back to direct proxying with the new token in `secrets/upstream_auth.conf`.

Between handovers (the second half of each token lifetime) no request passes through Python. The keeper
also answers `/readyz` (every registered model version has a READY worker) and `/metrics` for nginx
(keeper_http.py, which also relays the predictions of a handover, streamed ones chunk by chunk),
probes the token nginx holds (`shipyard_gateway_upstream_auth_failures_total`, counted by the error-rate
alert) and rotates nginx's logs. Run by `serving gateway start` as `python -m serving.gateway.keeper DIR`.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from logging.handlers import RotatingFileHandler
from pathlib import Path

from serving.torchserve.client import AUTH_FAILED, Endpoints, ServingError, TorchServeClient
from serving.gateway.config import GatewayConfig
from serving.gateway.keeper_http import Server, Upstream
from serving.gateway.render import KEEPER_SECRET
from serving.torchserve.server import readiness

log = logging.getLogger("shipyard.keeper")


def read_keys_settled(serve_dir: Path, tries: int = 50) -> dict:
    """The key file, retried while TorchServe rewrites it (it is not written atomically)."""
    for _ in range(tries):
        try:
            data = json.loads((serve_dir / "key_file.json").read_text())
            return {"key": data["inference"]["key"], "expires": _instant(data["inference"]["expiration time"]),
                    "api": data["API"]["key"]}
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.02)
    raise ServingError(f"{serve_dir / 'key_file.json'} unreadable: is TorchServe running?")


def _instant(text: str) -> float:
    """TorchServe's ISO instant (nanosecond digits, 'Z') → epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return stamp + float(f"0.{frac or '0'}")


def token_lifetime(serve_dir: Path) -> float:
    """The token lifetime (s) the TorchServe instance was started with (its config.properties)."""
    props = (serve_dir / "config.properties").read_text().splitlines()
    value = next((ln.split("=", 1)[1] for ln in props if ln.startswith("token_expiration_min=")), "60")
    return float(value) * 60


def ensure_fresh_token(serve_dir: Path) -> None:
    """Renew the inference key before nginx first reads it when half its life is gone (no request holds it yet)."""
    keys = read_keys_settled(serve_dir)
    if keys["expires"] - time.time() < token_lifetime(serve_dir) / 2:
        TorchServeClient(serve_dir, timeout=10).renew_key("inference")
        while read_keys_settled(serve_dir)["key"] == keys["key"]:
            time.sleep(0.02)


class Keeper:
    """State shared by the loop and the socket handlers."""

    def __init__(self, gateway_dir: Path) -> None:
        from serving.gateway.control import Gateway, load_running_config

        saved = json.loads((gateway_dir / "gateway.json").read_text())["config"]
        self.gateway = Gateway(load_running_config(GatewayConfig(root=saved["root"], instance=saved["instance"])))
        self.cfg = self.gateway.cfg
        self.serve_dir = self.cfg.serve_dir
        self.lock = threading.Lock()       # held while the token changes: forwarded requests wait
        self.token = read_keys_settled(self.serve_dir)["key"]
        self.ready: dict = {"ready": False, "reasons": ["not checked yet"], "models": []}
        self.counters = {"renewals": 0, "auth_failures": 0, "auth_ok": 1}
        self.stop = threading.Event()
        secret_conf = (gateway_dir / "secrets" / KEEPER_SECRET).read_text()
        self.secret = secret_conf.split('"')[1]

    def current_token(self) -> str:
        """The inference token to send now (a relayed request waits while a renewal holds the lock)."""
        with self.lock:
            return self.token

    # ------------------------------------------------------------------ the loop
    def ttl(self) -> float:
        """The token lifetime (s) TorchServe was started with."""
        return token_lifetime(self.serve_dir)

    def handover(self) -> None:
        """Renew the inference key with nginx routed through the keeper (no request sees a stale key)."""
        # drain: the old workers hold the old token, so renewing before they exit would fail their requests
        self.gateway.reload(upstream_mode="keeper", drain=True)
        client = TorchServeClient(self.serve_dir, timeout=10)
        with self.lock:
            before = self.token
            client.renew_key("inference")
            fresh = read_keys_settled(self.serve_dir)["key"]
            while fresh == before:
                time.sleep(0.02)
                fresh = read_keys_settled(self.serve_dir)["key"]
            self.token = fresh
        self.gateway.reload(upstream_mode="direct")
        self.counters["renewals"] += 1
        log.info("inference token renewed (handover %d)", self.counters["renewals"])

    def check_token(self) -> None:
        """Renew at half-life; follow a key someone else renewed; probe the key nginx holds."""
        keys = read_keys_settled(self.serve_dir)
        if keys["key"] != self.token:  # renewed elsewhere: the old one is dead already, take the new at once
            with self.lock:
                self.token = keys["key"]
            self.gateway.reload(upstream_mode="direct")
            log.warning("inference token was renewed outside the keeper; nginx reloaded with it")
        if keys["expires"] - time.time() < max(self.ttl() / 2, 3 * self.cfg.token_check_interval):
            self.handover()
        self.probe_auth()

    def probe_auth(self) -> None:
        """GET /ping with the token nginx holds: a refusal counts as an upstream auth failure."""
        ports = Endpoints.load(self.serve_dir)
        conn = http.client.HTTPConnection("127.0.0.1", ports.inference, timeout=5)
        try:
            conn.request("GET", "/ping", headers={"Authorization": f"Bearer {self.gateway.held_token()}"})
            resp = conn.getresponse()
            refused = resp.status in (400, 401) and AUTH_FAILED in resp.read().decode(errors="replace")
        except OSError:
            return
        finally:
            conn.close()
        self.counters["auth_ok"] = 0 if refused else 1
        self.counters["auth_failures"] += int(refused)

    def check_ready(self) -> None:
        """Refresh the readiness answer."""
        try:
            self.ready = readiness(TorchServeClient(self.serve_dir, timeout=5))
        except ServingError as err:
            self.ready = {"ready": False, "reasons": [str(err).splitlines()[0]], "models": []}

    def rotate_logs(self) -> None:
        """Rename nginx's logs past log_max_mb (keeping log_backups) and make nginx reopen them."""
        logs = self.gateway.dir / "logs"
        rotated = False
        for name in ("access.log", "error.log"):
            path = logs / name
            if path.is_file() and path.stat().st_size > self.cfg.log_max_mb * 1024 * 1024:
                for n in range(self.cfg.log_backups - 1, 0, -1):
                    older = logs / f"{name}.{n}"
                    if older.exists():
                        os.replace(older, logs / f"{name}.{n + 1}")
                os.replace(path, logs / f"{name}.1")
                rotated = True
        pid = self.gateway.pid()
        if rotated and pid:
            os.kill(pid, signal.SIGUSR1)  # nginx reopens its log files

    def run(self) -> None:
        """Loop until nginx is gone or SIGTERM."""
        while not self.stop.is_set() and self.gateway.pid():
            for step in (self.check_token, self.check_ready, self.rotate_logs):
                try:
                    step()
                except Exception:  # noqa: BLE001 - one failed check must not end the keeper
                    log.exception("%s failed", step.__name__)
            self.stop.wait(self.cfg.token_check_interval)

    def metrics(self) -> str:
        """Prometheus text: readiness, token renewals and upstream auth failures."""
        gw = self.cfg.instance
        lines = ["# TYPE shipyard_serving_ready gauge", f'shipyard_serving_ready{{gateway="{gw}"}} {int(self.ready["ready"])}',
                 "# TYPE shipyard_model_version_ready gauge"]
        lines += [f'shipyard_model_version_ready{{gateway="{gw}",model="{m["name"]}",version="{m["version"]}"}} '
                  f'{int(m["ready"])}' for m in self.ready["models"]]
        lines += ["# TYPE shipyard_gateway_upstream_auth_failures_total counter",
                  f'shipyard_gateway_upstream_auth_failures_total{{gateway="{gw}"}} {self.counters["auth_failures"]}',
                  "# TYPE shipyard_gateway_token_renewals_total counter",
                  f'shipyard_gateway_token_renewals_total{{gateway="{gw}"}} {self.counters["renewals"]}']
        return "\n".join(lines) + "\n"


def main(gateway_dir: str) -> int:
    """Serve nginx on the loopback port from gateway.json and run the loop until nginx stops or SIGTERM."""
    root = Path(gateway_dir).resolve()
    handler = RotatingFileHandler(root / "logs" / "keeper.log", maxBytes=1 << 20, backupCount=2)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    keeper = Keeper(root)
    upstream = Upstream(keeper.serve_dir, keeper.current_token, keeper.cfg.upstream_timeout)
    server = Server(keeper.gateway.state()["keeper_port"], keeper, upstream)
    signal.signal(signal.SIGTERM, lambda *_: keeper.stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (root / "run" / "keeper.pid").write_text(f"{os.getpid()}\n")
    (root / "run" / "keeper.ready").write_text("up\n")
    log.info("keeper up for %s", root)
    keeper.check_ready()
    keeper.run()
    server.shutdown()
    for name in ("keeper.pid", "keeper.ready"):
        (root / "run" / name).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
