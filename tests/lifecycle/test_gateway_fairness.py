"""No client starves another through the gateway (shared stack, tests/lifecycle/gateway_stack.py): 4 clients
sending a 6000x6000 RGBA PNG (refused with 413 from its header, before decoding) or one key flooding with 32
connections (capped by rate_limit.concurrent) leave a normal client within FACTOR of its solo throughput and
p50. Before the fixes the big PNG cut a normal client from 1,658 requests in 5 s to 7 in 15 s (p50 2.3 ms ->
2,342 ms). The floods come from ApacheBench (another process: the test's own client keeps its GIL) and share
this machine's cores with everything else, which is what the remaining slowdown measures."""
from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

import pytest

from tests.conftest import require_service
from tests.lifecycle.gateway_stack import BODY

pytestmark = [pytest.mark.gateway, pytest.mark.torchserve, pytest.mark.slow]
FACTOR = 10  # measured 3.4-5.2x on this 2-core box under load (the flooders' TLS and 429s use the same cores)


@pytest.fixture(scope="module")
def big_png() -> bytes:
    """6000x6000 RGBA, ~150 KB: under max_body, 36 megapixels (the digits model reads 8x8)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (6000, 6000), (10, 20, 30, 255)).save(buf, format="PNG")
    return buf.getvalue()


def _closed_loop(stack, seconds: float = 4.0) -> dict:
    """alice sending the normal PNG back to back: requests/s, p50 (ms), statuses."""
    session, latencies, codes = stack.session("alice"), [], Counter()
    session.post(stack.url, data=BODY, timeout=30)  # connection open before the clock starts
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        codes[session.post(stack.url, data=BODY, timeout=60).status_code] += 1
        latencies.append(time.perf_counter() - t0)
    return {"rps": len(latencies) / seconds, "p50_ms": statistics.median(latencies) * 1000, "codes": dict(codes)}


@contextmanager
def _flood(stack, body: bytes, clients: int, seconds: int, tmp_path):
    """mallory's key from `ab -k` with `clients` connections for `seconds`; yields once it has begun."""
    require_service(shutil.which("ab") is not None, "ab is not installed (apache2-utils; scripts/services.sh up)")
    (tmp_path / "body").write_bytes(body)
    proc = subprocess.Popen(["ab", "-q", "-k", "-c", str(clients), "-t", str(seconds), "-n", "10000000",
                             "-p", str(tmp_path / "body"), "-T", "application/octet-stream",
                             "-H", f"X-API-Key: {stack.keys['mallory']}", stack.url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)
        yield proc
    finally:
        out = proc.communicate(timeout=seconds + 30)[0]
    assert proc.returncode == 0, out[-2000:]


def _mallory_statuses(stack) -> Counter:
    """Status codes nginx logged for mallory's key (the access log names the client id, never the key)."""
    lines = (stack.gateway.dir / "logs" / "access.log").read_text().splitlines()
    return Counter(int(line.split('"')[2].split()[0]) for line in lines if " client=mallory " in line)


def _report(what: str, solo: dict, flooded: dict, mallory: Counter) -> None:
    print(f"\n{what}: alice solo {solo['rps']:.1f} req/s p50 {solo['p50_ms']:.1f} ms; flooded {flooded['rps']:.1f} "
          f"req/s p50 {flooded['p50_ms']:.1f} ms ({solo['rps'] / flooded['rps']:.1f}x, "
          f"{flooded['p50_ms'] / solo['p50_ms']:.1f}x); mallory {dict(mallory)}")


def _assert_within_factor(solo: dict, flooded: dict) -> None:
    assert flooded["codes"].keys() == {200}, flooded
    assert flooded["rps"] >= solo["rps"] / FACTOR, (solo, flooded)
    assert flooded["p50_ms"] <= solo["p50_ms"] * FACTOR, (solo, flooded)


def test_big_png_flood_leaves_a_normal_client_within_factor_of_solo(stack, big_png, tmp_path):
    solo = _closed_loop(stack)
    before = _mallory_statuses(stack)
    with _flood(stack, big_png, 4, 6, tmp_path):
        flooded = _closed_loop(stack)
    mallory = _mallory_statuses(stack) - before
    _report("4 x 6000x6000 RGBA PNG", solo, flooded, mallory)
    # at ab's deadline each of its 4 connections may be cut: 499 (waiting for the answer) or 400 (nginx still
    # reading the 150 KB body); nothing else but 413/429
    assert mallory[413] > 0 and set(mallory) <= {413, 429, 499, 400}, mallory
    assert mallory[400] + mallory[499] <= 4, mallory
    _assert_within_factor(solo, flooded)


def test_one_keys_flood_cannot_starve_another_key(stack, tmp_path):
    relaxed = stack.gateway.cfg
    capped = replace(relaxed, rate_limit=replace(relaxed.rate_limit, concurrent=2))  # 2 in flight per key
    stack.gateway.reconfigure(capped)
    try:
        solo = _closed_loop(stack)
        before = _mallory_statuses(stack)
        with _flood(stack, BODY, 32, 6, tmp_path):
            flooded = _closed_loop(stack)
        mallory = _mallory_statuses(stack) - before
    finally:
        stack.gateway.reconfigure(relaxed)
    _report("32 connections of one key, 2 in flight allowed", solo, flooded, mallory)
    assert mallory[429] > mallory[200] > 0 and set(mallory) <= {200, 429, 499}, mallory
    _assert_within_factor(solo, flooded)
