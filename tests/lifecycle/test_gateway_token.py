"""The gateway outlives TorchServe's token (renewed by its keeper with no failed request) and reports readiness:
`/readyz` and `serving status` are ready only while every registered model version has a READY worker."""
from __future__ import annotations

import json
import secrets
import shutil
import threading
import time

import pytest
import requests

from serving.torchserve.client import read_keys
from serving.gateway.config import GatewayConfig, RateLimit, TLSConfig
from serving.gateway.control import Gateway, self_signed_cert
from tests.conftest import REPO, require_service
from tests.lifecycle.cli import serving_cli
from tests.serving.servers import running_server

pytestmark = [pytest.mark.gateway, pytest.mark.torchserve, pytest.mark.slow]
MODEL = "digits_cnn"
BODY = sorted((REPO / "data" / "digits_samples").glob("*.png"))[0].read_bytes()
TTL_MIN = 0.25  # TorchServe reads token_expiration_min as a double: 15 s tokens, two expiries in ~35 s


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, exported_digits):
    require_service(shutil.which("nginx") is not None, "nginx is not installed (scripts/services.sh up)")
    out = tmp_path_factory.mktemp("token_gw")
    key = secrets.token_hex(32)
    (out / "api_keys").write_text(f"alice:{key}\n")
    cert, tls_key = self_signed_cert(out / "tls")
    with running_server(out / "serve", [exported_digits.mar], instance="tok",
                        overrides=[f"server.token_expiration_min={TTL_MIN}"]) as ts:
        cfg = GatewayConfig(root=str(out / "gw"), instance="gw", tls=TLSConfig(cert=str(cert), key=str(tls_key)),
                            api_keys_file=str(out / "api_keys"), serve_root=str(out / "serve"), serve_instance="tok",
                            token_check_interval=0.5, rate_limit=RateLimit(per_second=1000, burst=100))
        gw = Gateway(cfg)
        gw.start(routes={MODEL: {"champion": exported_digits.version}})
        session = requests.Session()
        session.trust_env = False
        session.verify = str(cert)
        session.headers.update({"X-API-Key": key, "Content-Type": "application/octet-stream"})
        try:
            yield gw, ts, session
        finally:
            gw.stop()
            assert gw.pid() is None and gw.keeper_pid() is None


def _metrics(gw, session) -> dict[str, float]:
    text = session.get(gw.url("readyz/metrics"), timeout=10).text
    return {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_gateway_outlives_two_token_expiries_under_traffic(gateway):
    gw, ts, session = gateway
    first_key = read_keys(ts.dir)["inference"]
    statuses: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def client():
        s = requests.Session()
        s.trust_env, s.verify, s.headers = False, session.verify, {**session.headers, "Connection": "close"}
        while not stop.is_set():
            try:  # one connection per request: a reload never drops an accepted one (see the runbook)
                statuses.append(s.post(gw.url(f"v1/models/{MODEL}:predict"), data=BODY, timeout=30).status_code)
            except requests.RequestException as err:
                errors.append(repr(err))
            time.sleep(0.02)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(2.2 * TTL_MIN * 60)  # past the first token's expiry, and the second's
    stop.set()
    for t in threads:
        t.join(60)
    metrics = _metrics(gw, session)
    assert not errors, errors[:3]
    assert len(statuses) > 50 and set(statuses) == {200}, {c: statuses.count(c) for c in set(statuses)}
    assert metrics["shipyard_gateway_token_renewals_total"] >= 2, metrics
    assert metrics["shipyard_gateway_upstream_auth_failures_total"] == 0, metrics
    assert read_keys(ts.dir)["inference"] != first_key


def _wait_ready(gw, session, want: bool, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        resp = session.get(gw.url("readyz"), timeout=10)
        if (resp.status_code == 200) == want or time.monotonic() > deadline:
            return {"status": resp.status_code, **resp.json()}
        time.sleep(0.25)


def test_readiness_follows_the_workers_and_a_queue_503_says_retry_after(gateway, exported_digits):
    gw, ts, session = gateway
    args = [f"root={ts.cfg.root}", f"instance={ts.cfg.instance}"]
    ready = _wait_ready(gw, session, True)
    assert ready["status"] == 200 and ready["ready"] is True, ready
    assert serving_cli("status", *args).returncode == 0
    client = ts.client()
    path = f"models/{MODEL}/{exported_digits.version}"
    client.management("PUT", path, params={"min_worker": 0, "max_worker": 0, "synchronous": "true"})
    try:
        down = _wait_ready(gw, session, False)
        assert down["status"] == 503 and not down["ready"] and MODEL in down["reasons"][0], down
        assert _metrics(gw, session)["shipyard_serving_ready"] == 0
        status = serving_cli("status", *args, check=False)
        assert status.returncode == 4 and json.loads(status.stdout)["ready"] is False, status.stdout
        busy = session.post(gw.url(f"v1/models/{MODEL}:predict"), data=BODY, timeout=30)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1", (busy.status_code, busy.text)
        assert busy.json()["code"] == 503 and "retry" in busy.json()["error"]
    finally:
        client.management("PUT", path, params={"min_worker": 1, "max_worker": 1, "synchronous": "true"})
    assert _wait_ready(gw, session, True)["ready"] is True
    assert session.post(gw.url(f"v1/models/{MODEL}:predict"), data=BODY, timeout=30).status_code == 200
