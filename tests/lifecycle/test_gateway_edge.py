"""The gateway's edge on the shared stack (tests/lifecycle/gateway_stack.py): TLS only (308 from plain HTTP to the
configured name), API keys (401), body cap (413), AEAD suites + HSTS, HTTP/1.0 clients, slow bodies cut off,
failed authentication rate-limited per address."""
from __future__ import annotations

import math
import time

import pytest
import requests

from tests.lifecycle.gateway_stack import BODY, MODEL, OCTET

pytestmark = [pytest.mark.gateway, pytest.mark.torchserve, pytest.mark.slow]


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
