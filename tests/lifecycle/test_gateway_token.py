"""The gateway outlives TorchServe's 1-minute token (renewed by its keeper) across two expiries with not one failed
request of the background traffic that ran through every test_gateway_*.py module; readiness (`/readyz`,
`serving status`) follows the workers; the per-key rate limit. Runs last of the gateway modules: the traffic
window ends in its first test, and the later tests here (workers scaled to 0, a 2 r/s limit) would fail it."""
from __future__ import annotations

import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from serving.gateway.config import RateLimit
from serving.torchserve.client import read_keys
from tests.lifecycle.cli import serving_cli
from tests.lifecycle.gateway_stack import BODY, MODEL, TTL_MIN, wait_ready

pytestmark = [pytest.mark.gateway, pytest.mark.torchserve, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _release_stack(request, stack):
    """Stop TorchServe and nginx after this module unless a later test still uses them."""
    yield
    items = request.session.items
    last = max(i for i, item in enumerate(items) if item.module is request.module)
    if not any("stack" in item.fixturenames for item in items[last + 1:]):
        stack.close()


def test_gateway_outlives_two_token_expiries_under_traffic(stack):
    traffic = stack.traffic
    first_key = next(iter(traffic.tokens), None) or read_keys(stack.ts_dir)["inference"]
    # two token lifetimes of traffic (the other gateway modules ran inside this window)
    deadline = traffic.started + 2 * TTL_MIN * 60 + 5
    while time.time() < deadline or len(traffic.expired_in_window()) < 2:
        assert time.time() < deadline + 2 * TTL_MIN * 60, ("no two expiries", traffic.tokens)
        time.sleep(1)
    traffic.stop()
    metrics = stack.metrics()
    counts = {c: traffic.statuses.count(c) for c in set(traffic.statuses)}
    print(f"\ntoken window: {traffic.ended - traffic.started:.0f} s of traffic, {len(traffic.statuses)} requests "
          f"{counts}, {len(traffic.tokens)} inference keys, {len(traffic.expired_in_window())} expiries inside")
    assert not traffic.errors, traffic.errors[:3]
    assert len(traffic.statuses) > 200 and counts.keys() == {200}, counts
    assert len(traffic.expired_in_window()) >= 2, traffic.tokens  # two keys passed their expiry under traffic
    assert metrics["shipyard_gateway_token_renewals_total"] >= 3, metrics
    assert metrics["shipyard_gateway_upstream_auth_failures_total"] == 0, metrics
    assert read_keys(stack.ts_dir)["inference"] != first_key


def test_readiness_follows_the_workers_and_a_queue_503_says_retry_after(stack):
    args = [f"root={stack.ts.cfg.root}", f"instance={stack.ts.cfg.instance}"]
    stack.gateway.set_route(MODEL, champion="1.0", clear_candidate=True)  # every request to the version scaled down
    ready = wait_ready(stack, True)
    assert ready["status"] == 200 and ready["ready"] is True, ready
    assert serving_cli("status", *args).returncode == 0
    client = stack.ts.client()
    path = f"models/{MODEL}/1.0"
    session = stack.session()
    client.management("PUT", path, params={"min_worker": 0, "max_worker": 0, "synchronous": "true"})
    try:
        down = wait_ready(stack, False)
        assert down["status"] == 503 and not down["ready"] and MODEL in down["reasons"][0], down
        assert stack.metrics()["shipyard_serving_ready"] == 0
        status = serving_cli("status", *args, check=False)
        assert status.returncode == 4 and json.loads(status.stdout)["ready"] is False, status.stdout
        busy = session.post(stack.url, data=BODY, timeout=30)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1", (busy.status_code, busy.text)
        assert busy.json()["code"] == 503 and "retry" in busy.json()["error"]
    finally:
        client.management("PUT", path, params={"min_worker": 1, "max_worker": 1, "synchronous": "true"})
    assert wait_ready(stack, True)["ready"] is True
    assert session.post(stack.url, data=BODY, timeout=30).status_code == 200


def test_rate_limit_per_key_gives_429(stack):
    from dataclasses import replace

    from serving.gateway.control import Gateway

    relaxed = stack.gateway.cfg
    stack.gateway.reconfigure(replace(relaxed, rate_limit=RateLimit(per_second=2, burst=3)))  # a graceful reload
    try:
        # the keeper's own Gateway was built at its start with the relaxed settings: a token handover's reload
        # from it must keep the limit set since (it once re-rendered its start-up config, lifting the limit)
        Gateway(relaxed).reload()
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


