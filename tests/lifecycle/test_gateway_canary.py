"""Canary routing on the shared stack (tests/lifecycle/gateway_stack.py): the configured split, the canary
report and its exit codes, promote/rollback through the registry while a client keeps sending, the latency the
gateway adds, and no secret in any log or run file."""
from __future__ import annotations

import json
import statistics
import threading
import time

import pytest
import requests
from scipy.stats import binomtest

from serving.torchserve.client import read_keys
from tests.lifecycle.cli import serving_cli
from tests.lifecycle.conftest import grep_tree
from tests.lifecycle.gateway_stack import BODY, MODEL, OCTET, SHARE

pytestmark = [pytest.mark.gateway, pytest.mark.torchserve, pytest.mark.slow]


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
    from serving.monitoring.canary import EXIT, canary_report, compose

    strict = canary_report(compose([*common, "thresholds.max_confidence_drop=-1"]))
    assert strict["recommendation"] == "rollback" and EXIT["rollback"] == 3
    assert any("mean confidence" in r for r in strict["reasons"])
    wait = canary_report(compose([*common, "thresholds.min_requests=100000"]))
    assert wait["recommendation"] == "wait" and EXIT["wait"] == 4


def test_promote_then_rollback_while_a_client_keeps_sending(stack):
    from serving.cli.registry import _dispatch

    results: list[tuple[float, int, str]] = []
    errors: list[str] = []
    stop = threading.Event()

    def client():
        # a new connection per request: a graceful reload closes *idle* keep-alive connections of the old
        # workers, and a request racing into one gets no response (clients retry that); what this test
        # checks is that nginx's reload itself never drops an accepted request, so no retries here
        session = stack.session(keepalive=False)
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
    direct.headers.update(OCTET)
    via = stack.session()
    timings: dict[str, list[float]] = {"direct": [], "gateway": []}
    for _ in range(5):  # warm both connections
        direct.post(stack.ts_url, data=BODY, timeout=30, headers=_bearer(stack))
        via.post(stack.url, data=BODY, timeout=30)
    for _ in range(60):  # interleaved, so both see the same machine load
        for name, session, url in (("direct", direct, stack.ts_url), ("gateway", via, stack.url)):
            # the keeper renews the 1-minute token meanwhile: the direct client reads the current one each time
            headers = _bearer(stack) if name == "direct" else {}
            t0 = time.perf_counter()
            status = session.post(url, data=BODY, timeout=30, headers=headers).status_code
            elapsed = (time.perf_counter() - t0) * 1000
            if status == 400 and name == "direct":  # renewed between reading and sending: not a timing
                status = session.post(url, data=BODY, timeout=30, headers=_bearer(stack)).status_code
            else:
                timings[name].append(elapsed)
            assert status == 200
    p50 = {k: statistics.median(v) for k, v in timings.items()}
    added = p50["gateway"] - p50["direct"]
    record_property("gateway_added_p50_ms", added)
    print(f"\nlatency p50: TorchServe direct {p50['direct']:.2f} ms, through the gateway {p50['gateway']:.2f} ms "
          f"(added {added:.2f} ms)")
    assert p50["gateway"] > 0 and p50["direct"] > 0


def _bearer(stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {read_keys(stack.ts_dir)['inference']}"}


def test_no_secret_in_any_log_or_run_file(stack, exported_digits, digits_v2):
    status = serving_cli("gateway", "status", f"root={stack.out / 'gateway'}", "instance=gw")
    ts_keys = read_keys(stack.ts_dir)
    planted = {**{f"api key {c}": k for c, k in stack.keys.items()},
               **{f"torchserve {name} token": v for name, v in ts_keys.items()},
               # every inference token TorchServe issued while the background traffic ran (renewals)
               **{f"earlier inference token {n}": v for n, v in enumerate(stack.traffic.tokens)}}
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


