"""Real nginx in front of a real TorchServe: TLS, API keys (401), rate limit (429), body cap (413), canary split,
promote/rollback through the registry while a client keeps sending, canary report, and no leaked secret."""
from __future__ import annotations

import json
import math
import secrets
import shutil
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from scipy.stats import binomtest

from serving.torchserve.client import read_keys
from serving.gateway.config import GatewayConfig, RateLimit, TLSConfig
from serving.gateway.control import Gateway, self_signed_cert
from tests.conftest import REPO, require_service
from tests.lifecycle.cli import serving_cli
from tests.lifecycle.conftest import grep_tree
from tests.serving.servers import require_torchserve, running_server

pytestmark = [pytest.mark.gateway, pytest.mark.torchserve, pytest.mark.slow]
MODEL = "digits_cnn"
SHARE = 0.30
BODY = sorted((REPO / "data" / "digits_samples").glob("*.png"))[3].read_bytes()
OCTET = {"Content-Type": "application/octet-stream"}


@dataclass
class Stack:
    out: Path
    gateway: Gateway
    cert: Path
    keys: dict[str, str]
    ts_dir: Path
    ts_url: str
    registry_overrides: list[str]

    @property
    def url(self) -> str:
        return self.gateway.url(f"v1/models/{MODEL}:predict")

    def session(self, client: str | None = "alice") -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.cert)
        s.headers.update(OCTET)
        if client:
            s.headers["X-API-Key"] = self.keys[client]
        return s


@pytest.fixture(scope="module")
def stack(tmp_path_factory, exported_digits, digits_v2):
    require_service(shutil.which("nginx") is not None, "nginx is not installed (scripts/services.sh up)")
    require_torchserve()
    out = tmp_path_factory.mktemp("gateway_out")      # everything the stack writes: grepped for secrets
    private = tmp_path_factory.mktemp("gateway_keys")  # where the operator keeps secrets (outside it)
    # 64 hex characters (`openssl rand -hex 32`): nginx's map hash is sized from the keys (it refused these once)
    keys = {"alice": secrets.token_hex(32), "bob": secrets.token_hex(32)}
    (private / "api_keys").write_text("".join(f"{c}:{k}\n" for c, k in keys.items()))
    cert, key = self_signed_cert(private / "tls")
    from serving.cli.registry import _dispatch

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPYARD_PREDLOG_RATE", "1.0")  # every request logged (the workers inherit the env)
        with running_server(out / "serve", [exported_digits.mar, digits_v2.mar], instance="ts") as ts:
            overrides = [f"registry.root={out / 'registry'}", f"serve_root={out / 'serve'}", "serve_instance=ts",
                         f"gateway_root={out / 'gateway'}", "gateway_instance=gw"]
            _dispatch("register", [], [*overrides, f"run_dir={exported_digits.run_dir}"])
            _dispatch("register", [], [*overrides, f"run_dir={digits_v2.run_dir}"])
            _dispatch("promote", [MODEL, "1"], overrides)  # champion 1.0 before the gateway exists
            cfg = GatewayConfig(root=str(out / "gateway"), instance="gw", tls=TLSConfig(cert=str(cert), key=str(key)),
                                api_keys_file=str(private / "api_keys"), rate_limit=RateLimit(per_second=1000, burst=100),
                                max_body="1m", serve_root=str(out / "serve"), serve_instance="ts",
                                client_timeout=2, server_name="localhost")
            gw = Gateway(cfg)
            gw.start(routes={MODEL: {"champion": "1.0", "candidate": "2.0", "percent": SHARE * 100}})
            try:
                ts_url = ts.client().url("inference", f"predictions/{MODEL}/1.0")
                yield Stack(out, gw, cert, keys, ts.dir, ts_url, overrides)
            finally:
                gw.stop()
                assert gw.pid() is None


def test_https_with_the_test_certificate_and_plain_http_never_reaches_a_model(stack):
    resp = stack.session().post(stack.url, data=BODY, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["label"] in [str(d) for d in range(10)] and resp.headers["X-Model-Version"] in ("1.0", "2.0")
    with pytest.raises(requests.exceptions.SSLError):  # an unknown certificate is refused by a verifying client
        requests.post(stack.url, data=BODY, headers={"X-API-Key": stack.keys["alice"]}, timeout=10, verify=True)
    http_port = stack.gateway.state()["http_port"]
    plain = requests.post(f"http://127.0.0.1:{http_port}/v1/models/{MODEL}:predict", data=BODY,
                          headers={"X-API-Key": stack.keys["alice"], **OCTET}, allow_redirects=False, timeout=10)
    assert plain.status_code == 308 and plain.headers["Location"].startswith("https://")
    assert "label" not in plain.text
    forged = requests.get(f"http://127.0.0.1:{http_port}/x", headers={"Host": "evil.example"}, allow_redirects=False,
                          timeout=10)
    assert forged.headers["Location"] == f"https://localhost:{stack.gateway.state()['https_port']}/x"  # not Host


def test_api_key_is_required(stack):
    for headers in ({}, {"X-API-Key": "not-a-key-of-this-gateway-000"}):
        resp = stack.session(None).post(stack.url, data=BODY, headers=headers, timeout=10)
        assert resp.status_code == 401 and "API key" in resp.json()["message"]


def test_oversized_body_gets_413(stack):
    resp = stack.session().post(stack.url, data=b"\0" * (2 * 1024 * 1024), timeout=30)
    assert resp.status_code == 413 and resp.json()["code"] == 413


@pytest.fixture(scope="module")
def canary_traffic(stack) -> list[str]:
    """200 requests through the 70/30 canary route: the versions that answered (also feeds the report)."""
    session = stack.session()
    versions = []
    for _ in range(200):
        resp = session.post(stack.url, data=BODY, timeout=30)
        assert resp.status_code == 200, resp.text
        versions.append(resp.headers["X-Model-Version"])
    return versions


def test_canary_split_matches_the_configured_share(canary_traffic):
    versions = canary_traffic
    n_candidate = versions.count("2.0")
    assert set(versions) == {"1.0", "2.0"}
    # a fair coin with P(candidate)=0.30: the two-sided binomial test must not reject at 0.001
    assert binomtest(n_candidate, len(versions), SHARE).pvalue > 0.001, n_candidate


def test_rate_limit_per_key_gives_429(stack):
    from dataclasses import replace

    relaxed = stack.gateway.cfg
    stack.gateway.reconfigure(replace(relaxed, rate_limit=RateLimit(per_second=2, burst=3)))  # a graceful reload
    try:
        _hammer(stack)
    finally:
        stack.gateway.reconfigure(relaxed)


def _hammer(stack):
    n = 40
    sessions = [stack.session("bob") for _ in range(n)]
    for s in sessions:  # open every TLS connection first (/healthz is not rate limited)
        assert s.get(stack.gateway.url("healthz"), timeout=30).status_code == 200
    barrier = threading.Barrier(n)

    def call(s):
        barrier.wait()  # 40 requests at once: far past 2 r/s with a burst of 3
        return s.post(stack.url, data=BODY, timeout=60)

    with ThreadPoolExecutor(n) as pool:
        t0 = time.monotonic()
        answers = list(pool.map(call, sessions))
        elapsed = time.monotonic() - t0
    statuses = [r.status_code for r in answers]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and set(statuses) <= {200, 429}, statuses
    # nginx admitted at most 1 + burst plus what the rate refilled while the requests were answered
    assert statuses.count(200) <= 1 + 3 + math.ceil(2 * elapsed), (statuses.count(200), elapsed)
    assert "rate limit" in limited[0].json()["message"]
    # alice's budget is her own
    assert stack.session("alice").post(stack.url, data=BODY, timeout=30).status_code == 200


def test_canary_report_recommends_and_exit_code_follows(stack, canary_traffic, tmp_path):
    common = [f"model_name={MODEL}", f"gateway_root={stack.out / 'gateway'}", "gateway_instance=gw",
              f"serve_root={stack.out / 'serve'}", "serve_instance=ts", "window_minutes=0",
              "thresholds.max_latency_ratio=5"]  # same weights: only a loaded CI machine could slow one version
    ok = serving_cli("canary", "report", *common, f"out={tmp_path}", check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads((tmp_path / "canary_report.json").read_text())
    assert report["recommendation"] == "promote", report["reasons"]
    assert report["candidate"]["requests"] >= canary_traffic.count("2.0") >= 30
    assert report["champion"]["logged_predictions"] > 0 and report["candidate"]["mean_confidence"] > 0
    from serving.monitoring.canary import EXIT, CanaryConfig, canary_report
    from serving.structured import compose_structured

    strict = canary_report(compose_structured("canary", CanaryConfig, [*common, "thresholds.max_confidence_drop=-1"]))
    assert strict["recommendation"] == "rollback" and EXIT["rollback"] == 3
    assert any("mean confidence" in r for r in strict["reasons"])
    wait = canary_report(compose_structured("canary", CanaryConfig, [*common, "thresholds.min_requests=100000"]))
    assert wait["recommendation"] == "wait" and EXIT["wait"] == 4


def test_promote_then_rollback_while_a_client_keeps_sending(stack):
    from serving.cli.registry import _dispatch

    results: list[tuple[float, int, str]] = []
    errors: list[str] = []
    stop = threading.Event()

    def client():
        session = stack.session()
        # a new connection per request: a graceful reload closes *idle* keep-alive connections of the old
        # workers, and a request racing into one gets no response (clients retry that); what this test
        # checks is that nginx's reload itself never drops an accepted request, so no retries here
        session.headers["Connection"] = "close"
        while not stop.is_set():
            try:
                r = session.post(stack.url, data=BODY, timeout=30)
                results.append((time.monotonic(), r.status_code, r.headers.get("X-Model-Version", "")))
            except requests.RequestException as err:
                errors.append(repr(err))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1.0)
        promoted = _dispatch("promote", [MODEL, "2"], stack.registry_overrides)
        t_promoted = time.monotonic()
        time.sleep(1.5)
        rolled = _dispatch("rollback", [MODEL], stack.registry_overrides)
        t_rolled = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        thread.join(60)
    assert promoted["gateway"] == {"champion": "2.0"} and promoted["torchserve"]["default_version"] == "2.0"
    assert rolled["champion"] == "1" and rolled["torchserve"]["default_version"] == "1.0"
    assert not errors and len(results) > 20, errors[:3]
    assert {status for _, status, _ in results} == {200}  # not one request failed across both reloads
    between = [v for t, _, v in results if t_promoted + 0.2 < t < t_rolled - 1.0]
    after = [v for t, _, v in results if t > t_rolled + 0.2]
    assert between and set(between) == {"2.0"}
    assert after and set(after) == {"1.0"}


def test_gateway_added_latency(stack, record_property):
    """Not a timed assertion: measures p50 through nginx (TLS, keep-alive) against TorchServe directly."""
    direct = requests.Session()
    direct.trust_env = False
    direct.headers.update({"Authorization": f"Bearer {read_keys(stack.ts_dir)['inference']}", **OCTET})
    via = stack.session()
    timings: dict[str, list[float]] = {"direct": [], "gateway": []}
    for _ in range(5):  # warm both connections
        direct.post(stack.ts_url, data=BODY, timeout=30)
        via.post(stack.url, data=BODY, timeout=30)
    for _ in range(60):  # interleaved, so both see the same machine load
        for name, session, url in (("direct", direct, stack.ts_url), ("gateway", via, stack.url)):
            t0 = time.perf_counter()
            assert session.post(url, data=BODY, timeout=30).status_code == 200
            timings[name].append((time.perf_counter() - t0) * 1000)
    p50 = {k: statistics.median(v) for k, v in timings.items()}
    added = p50["gateway"] - p50["direct"]
    record_property("gateway_added_p50_ms", added)
    print(f"\nlatency p50: TorchServe direct {p50['direct']:.2f} ms, through the gateway {p50['gateway']:.2f} ms "
          f"(added {added:.2f} ms)")
    assert p50["gateway"] > 0 and p50["direct"] > 0


def test_no_secret_in_any_log_or_run_file(stack, exported_digits, digits_v2):
    status = serving_cli("gateway", "status", f"root={stack.out / 'gateway'}", "instance=gw")
    ts_keys = read_keys(stack.ts_dir)
    planted = {**{f"api key {c}": k for c, k in stack.keys.items()},
               **{f"torchserve {name} token": v for name, v in ts_keys.items()}}
    for value in planted.values():
        assert value not in status.stdout + status.stderr
    gw_dir = stack.gateway.dir
    allowed = {stack.ts_dir / "key_file.json", gw_dir / "secrets" / "api_keys.conf",
               gw_dir / "secrets" / "upstream_auth.conf"}
    for path in allowed - {stack.ts_dir / "key_file.json"}:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    # the secrets did reach where they must: nginx's include files
    assert stack.keys["alice"] in (gw_dir / "secrets" / "api_keys.conf").read_text()
    assert (gw_dir / "logs" / "access.log").stat().st_size > 0
    hits = []
    for root in (stack.out, exported_digits.run_dir, digits_v2.run_dir):
        hits += grep_tree(root, planted, allowed)
    assert not hits, hits


def _tls_socket(stack, **ctx_options):
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(stack.cert))
    ctx.check_hostname = False
    for name, value in ctx_options.items():
        getattr(ctx, name)(value) if callable(getattr(ctx, name)) else setattr(ctx, name, value)
    raw = socket.create_connection(("127.0.0.1", stack.gateway.state()["https_port"]), timeout=15)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_tls_refuses_cbc_sha1_suites_and_sends_hsts(stack):
    import ssl

    resp = stack.session().post(stack.url, data=BODY, timeout=30)
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    assert stack.session(None).post(stack.url, data=BODY, timeout=10).headers.get("Strict-Transport-Security")
    with pytest.raises(ssl.SSLError):  # a TLS 1.2 client offering only CBC/SHA-1 suites finds no common cipher
        _tls_socket(stack, maximum_version=ssl.TLSVersion.TLSv1_2, set_ciphers="AES128-SHA:ECDHE-RSA-AES128-SHA")
    with _tls_socket(stack, maximum_version=ssl.TLSVersion.TLSv1_2) as sock:
        assert "GCM" in sock.cipher()[0] or "CHACHA20" in sock.cipher()[0], sock.cipher()


def test_http10_client_gets_its_answer_and_the_connection_closes(stack):
    head = (f"POST /v1/models/{MODEL}:predict HTTP/1.0\r\nHost: localhost\r\nX-API-Key: {stack.keys['alice']}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(BODY)}\r\n\r\n").encode()
    with _tls_socket(stack) as sock:
        sock.sendall(head + BODY)
        data = b""
        while chunk := sock.recv(65536):  # ends only when the gateway closes the connection
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b'"label"' in data, data[:300]


def test_slow_body_is_cut_off_after_client_timeout(stack):
    head = (f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {stack.keys['alice']}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(BODY)}\r\n\r\n").encode()
    with _tls_socket(stack) as sock:
        sock.sendall(head + BODY[:4])
        t0 = time.monotonic()
        try:
            answer = sock.recv(65536)  # nothing more is sent: client_timeout=2 s closes it (408 or reset)
        except ConnectionError:
            answer = b""
        waited = time.monotonic() - t0
    assert waited < 10 and (answer == b"" or answer.startswith(b"HTTP/1.1 408")), (waited, answer[:200])


def test_failed_authentication_is_rate_limited_per_address(stack):
    session = stack.session(None)
    t0 = time.monotonic()
    codes = [session.post(stack.url, data=b"x", headers={"X-API-Key": f"{n:064x}"}, timeout=10).status_code
             for n in range(60)]
    elapsed = time.monotonic() - t0
    limited = codes.count(429)
    assert set(codes) <= {401, 429} and limited, codes
    # 2 r/s with a burst of 10: at most 11 + what the rate refilled get to hear "wrong key"
    assert codes.count(401) <= 11 + math.ceil(2 * elapsed), (codes.count(401), elapsed)
    assert stack.session("alice").post(stack.url, data=BODY, timeout=30).status_code == 200  # keys still work
