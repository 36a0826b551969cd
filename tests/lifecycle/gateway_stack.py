"""One real TorchServe (1-minute inference tokens, digits v1.0 + v2.0) behind one real nginx gateway, shared by
the tests/lifecycle/test_gateway_*.py modules, with a background client that sends through the gateway from
the start of the stack: the token test (test_gateway_token.py) needs two token expiries (> 2 minutes) of
uninterrupted traffic, and the other gateway tests run inside that window instead of after it."""
from __future__ import annotations

import json
import secrets
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from serving.gateway.config import GatewayConfig, RateLimit, TLSConfig
from serving.gateway.control import Gateway
from serving.gateway.files import self_signed_cert
from tests.conftest import REPO
from tests.serving.servers import running_server

MODEL = "digits_cnn"
SHARE = 0.30  # the candidate's share of the canary route
TTL_MIN = 1   # server.token_expiration_min: the keeper renews every ~30 s, the test spans two expiries
BODY = sorted((REPO / "data" / "digits_samples").glob("*.png"))[3].read_bytes()
OCTET = {"Content-Type": "application/octet-stream"}
CLIENTS = ("alice", "bob", "carol", "mallory")  # carol: the background traffic; mallory: floods


@dataclass
class Traffic:
    """Background clients through the gateway (one TLS connection per request, no retries) and the inference
    keys TorchServe issued meanwhile (key → expiry, read from key_file.json)."""

    stack: "Stack"
    clients: int = 2
    pause: float = 0.2
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        self._threads.append(threading.Thread(target=self._watch_keys, daemon=True))

    def start(self) -> "Traffic":
        self.started = time.time()
        for t in self._threads:
            t.start()
        return self

    def _client(self) -> None:
        s = self.stack.session("carol", keepalive=False)
        while not self._stop.is_set():
            try:  # a new connection per request: what is checked is that no accepted request is ever lost
                self.statuses.append(s.post(self.stack.url, data=BODY, timeout=30).status_code)
            except requests.RequestException as err:
                self.errors.append(repr(err))
            self._stop.wait(self.pause)

    def _watch_keys(self) -> None:
        from serving.gateway.keeper import read_keys_settled

        while not self._stop.is_set():
            keys = read_keys_settled(self.stack.ts_dir)
            self.tokens.setdefault(keys["key"], keys["expires"])
            self._stop.wait(0.5)

    def expired_in_window(self) -> list[float]:
        """Expiry instants of the issued keys that passed while the traffic ran."""
        end = self.ended or time.time()
        return sorted(e for e in self.tokens.values() if self.started < e < end)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        self.ended = self.ended or time.time()


@dataclass
class Stack:
    out: Path
    gateway: Gateway
    cert: Path
    keys: dict[str, str]
    ts: object
    registry_overrides: list[str]
    traffic: Traffic | None = None
    close: object = None  # set by the session fixture: ends the stack early

    @property
    def ts_dir(self) -> Path:
        return self.ts.dir

    @property
    def ts_url(self) -> str:
        """TorchServe's own prediction URL for version 1.0 (no gateway)."""
        return self.ts.client().url("inference", f"predictions/{MODEL}/1.0")

    @property
    def url(self) -> str:
        return self.gateway.url(f"v1/models/{MODEL}:predict")

    def session(self, client: str | None = "alice", keepalive: bool = True) -> requests.Session:
        """A verifying HTTPS session with the client's key. Keep-alive sessions retry a request once when a
        reload closed their idle pooled connection at the instant it was sent (what serving/RUNBOOK.md tells
        clients to do; the keeper reloads nginx twice per token renewal)."""
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.cert)
        s.headers.update(OCTET)
        if client:
            s.headers["X-API-Key"] = self.keys[client]
        if keepalive:
            s.mount("https://", HTTPAdapter(max_retries=Retry(total=1, connect=1, read=1, status=0, redirect=0,
                                                              allowed_methods=None, raise_on_status=False)))
        else:
            s.headers["Connection"] = "close"
        return s

    def metrics(self) -> dict[str, float]:
        """The keeper's /readyz/metrics as {name: value}."""
        text = self.session().get(self.gateway.url("readyz/metrics"), timeout=10).text
        return {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}


@contextmanager
def open_stack(tmp_path_factory, exported_digits, digits_v2) -> Iterator[Stack]:
    """Registry with digits 1.0 (champion) and 2.0, TorchServe with both, the gateway with a 70/30 canary
    route, and the background traffic started; everything stopped (and checked gone) afterwards."""
    from serving.cli.registry import _dispatch

    out = tmp_path_factory.mktemp("gateway_out")      # everything the stack writes: grepped for secrets
    private = tmp_path_factory.mktemp("gateway_keys")  # where the operator keeps secrets (outside it)
    # 64 hex characters (`openssl rand -hex 32`): nginx's map hash is sized from the keys (it refused these once)
    keys = {c: secrets.token_hex(32) for c in CLIENTS}
    (private / "api_keys").write_text("".join(f"{c}:{k}\n" for c, k in keys.items()))
    cert, key = self_signed_cert(private / "tls")
    overrides = [f"registry.root={out / 'registry'}", f"serve_root={out / 'serve'}", "serve_instance=ts",
                 f"gateway_root={out / 'gateway'}", "gateway_instance=gw"]
    with pytest.MonkeyPatch.context() as mp, ExitStack() as cleanup:
        mp.setenv("SHIPYARD_PREDLOG_RATE", "1.0")  # every request logged (the workers inherit the env)
        ts = cleanup.enter_context(running_server(out / "serve", [exported_digits.mar, digits_v2.mar], instance="ts",
                                                  overrides=[f"server.token_expiration_min={TTL_MIN}"]))
        _dispatch("register", [], [*overrides, f"run_dir={exported_digits.run_dir}"])
        _dispatch("register", [], [*overrides, f"run_dir={digits_v2.run_dir}"])
        _dispatch("promote", [MODEL, "1"], overrides)  # champion 1.0 before the gateway exists
        cfg = GatewayConfig(root=str(out / "gateway"), instance="gw", tls=TLSConfig(cert=str(cert), key=str(key)),
                            api_keys_file=str(private / "api_keys"), rate_limit=RateLimit(per_second=1000, burst=100),
                            max_body="1m", serve_root=str(out / "serve"), serve_instance="ts",
                            client_timeout=2, server_name="localhost", token_check_interval=0.5)
        gw = Gateway(cfg)
        gw.start(routes={MODEL: {"champion": "1.0", "candidate": "2.0", "percent": SHARE * 100}})
        cleanup.callback(_stop_gateway, gw)
        stack = Stack(out, gw, cert, keys, ts, overrides)
        stack.traffic = Traffic(stack).start()
        cleanup.callback(stack.traffic.stop)
        yield stack


def _stop_gateway(gw: Gateway) -> None:
    gw.stop()
    assert gw.pid() is None and gw.keeper_pid() is None


def wait_ready(stack: Stack, want: bool, timeout: float = 60) -> dict:
    """/readyz once it answers `want` (or at the deadline): status code and body."""
    session = stack.session()
    deadline = time.monotonic() + timeout
    while True:
        resp = session.get(stack.gateway.url("readyz"), timeout=10)
        if (resp.status_code == 200) == want or time.monotonic() > deadline:
            return {"status": resp.status_code, **json.loads(resp.text)}
        time.sleep(0.25)
