"""A real TorchServe serving the exported digits and text models: REST and gRPC answers equal the
in-process ones, token auth is enforced, metrics count requests, secrets stay out of files and output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from serving.torchserve.client import KEY_FILE, read_keys
from tests.conftest import REPO
from tests.serving.expected import assert_same_prediction, predict_in_process, text_bodies
from tests.serving.servers import running_server

pytestmark = [pytest.mark.torchserve, pytest.mark.slow]
SAMPLES = sorted((REPO / "data" / "digits_samples").glob("*.png"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, exported_digits, exported_text):
    """One TorchServe for the module: digits_cnn and text_transformer v1.0, dynamic batching on."""
    with running_server(tmp_path_factory.mktemp("ts_server"), [exported_digits.mar, exported_text.mar],
                        overrides=["model.batch_size=4", "model.max_batch_delay=20"]) as instance:
        yield instance


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m serving ...` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "serving", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_image_predictions_over_http_equal_in_process(server, exported_digits):
    client = server.client()
    bodies = [p.read_bytes() for p in SAMPLES]
    expected = predict_in_process(exported_digits.export_dir, bodies, "image")
    for body, want in zip(bodies, expected):
        resp = client.predict(exported_digits.name, body, content_type="image/png")
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith("application/json")
        assert_same_prediction(resp.json(), want)


def test_text_predictions_over_http_equal_in_process(server, exported_text):
    client = server.client()
    bodies = text_bodies(REPO / "data" / "support_tickets" / "test.csv", 6)
    expected = predict_in_process(exported_text.export_dir, bodies, "text")
    for body, want in zip(bodies, expected):
        resp = client.predict(exported_text.name, body, content_type="application/json")
        assert resp.status_code == 200, resp.text
        assert_same_prediction(resp.json(), want)
    plain = json.loads(bodies[0])["text"].encode()  # a plain-text body answers the same
    resp = client.predict(exported_text.name, plain, content_type="text/plain")
    assert_same_prediction(resp.json(), expected[0])


def test_grpc_answers_like_rest_and_requires_the_token(server, exported_digits, exported_text):
    import grpc

    from serving.torchserve.grpc_client import TorchServeGrpcClient, is_error_answer

    client = server.client()
    text_body = text_bodies(REPO / "data" / "support_tickets" / "test.csv", 1)[0]
    with TorchServeGrpcClient(server.dir) as rpc:
        assert json.loads(rpc.ping())["status"] == "Healthy"
        for path in SAMPLES[:4]:
            over_grpc = json.loads(rpc.predict(exported_digits.name, {"data": path.read_bytes()}))
            over_rest = client.predict(exported_digits.name, path.read_bytes()).json()
            assert_same_prediction(over_grpc, over_rest, tol=1e-6)
        over_grpc = json.loads(rpc.predict(exported_text.name, {"data": text_body}, version=exported_text.version))
        assert_same_prediction(over_grpc, client.predict(exported_text.name, text_body,
                                                         content_type="application/json").json(), tol=1e-6)
        assert json.loads(rpc.describe(exported_digits.name))[0]["modelVersion"] == exported_digits.version
        for token in ("", "not-the-key", read_keys(server.dir)["management"]):  # the management key is not enough
            with pytest.raises(grpc.RpcError) as err:
                rpc.predict(exported_digits.name, {"data": SAMPLES[0].read_bytes()}, token=token)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "Token Authorization failed" in err.value.details()
        # a bad input over gRPC gets the handler's JSON error (TorchServe 0.12 sends it with status OK)
        refused = json.loads(rpc.predict(exported_digits.name, {"data": b"not an image"}))
        assert is_error_answer(refused) and "not a readable image" in refused["error"], refused
        assert not is_error_answer(json.loads(rpc.predict(exported_digits.name, {"data": SAMPLES[0].read_bytes()})))
    refused_cli = cli("predict", exported_digits.name, "--grpc", str(REPO / "README.md"), f"root={server.cfg.root}",
                      f"instance={server.cfg.instance}")
    assert refused_cli.returncode == 1 and "not a readable image" in refused_cli.stdout, refused_cli.stdout


def test_a_classifier_over_grpc_stream_predictions_answers_once_and_keeps_its_worker(server, exported_digits):
    """StreamPredictions on a model that never streams: one answer, then the call ends. TorchServe's frontend read
    the end-of-stream header no handler had set (NullPointerException), failed the call and restarted the worker."""
    from serving.torchserve.grpc_client import TorchServeGrpcClient

    (before,) = server.client().management("GET", f"models/{exported_digits.name}")
    with TorchServeGrpcClient(server.dir) as rpc:
        good = [json.loads(p) for p in rpc.stream(exported_digits.name, {"data": SAMPLES[0].read_bytes()})]
        bad = [json.loads(p) for p in rpc.stream(exported_digits.name, {"data": b"not an image"})]
    assert_same_prediction(good[0], server.client().predict(exported_digits.name, SAMPLES[0].read_bytes()).json())
    assert len(good) == 1 and len(bad) == 1 and "not a readable image" in bad[0]["error"]
    (after,) = server.client().management("GET", f"models/{exported_digits.name}")
    assert [w["pid"] for w in after["workers"]] == [w["pid"] for w in before["workers"]]


def test_requests_without_the_right_token_are_refused(server, exported_digits):
    client = server.client()
    body = SAMPLES[0].read_bytes()
    keys = read_keys(server.dir)
    for api, path, method, headers in [
        ("inference", f"predictions/{exported_digits.name}", "POST", {}),
        ("inference", f"predictions/{exported_digits.name}", "POST", {"Authorization": "Bearer wrong"}),
        ("inference", f"predictions/{exported_digits.name}", "POST", {"Authorization": f"Bearer {keys['management']}"}),
        ("management", "models", "GET", {}),
        ("management", "models", "GET", {"Authorization": f"Bearer {keys['inference']}"}),
        ("inference", "ping", "GET", {}),
    ]:
        resp = requests.request(method, client.url(api, path), data=body, headers=headers, timeout=10)
        assert resp.status_code in (400, 401, 403), (path, headers.keys(), resp.status_code)
        assert "Token Authorization failed" in resp.text or "InvalidKeyException" in resp.text, resp.text
    assert client.predict(exported_digits.name, body).status_code == 200  # with the key the CLI reads


def test_metrics_endpoint_lists_request_counters(server, exported_digits):
    client = server.client()
    for path in SAMPLES[:3]:
        assert client.predict(exported_digits.name, path.read_bytes()).status_code == 200
    assert client.predict(exported_digits.name, b"").status_code == 400
    text = client.metrics()
    counters = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith(("Requests2XX{", "Requests4XX{", "ts_inference_requests_total{"))}
    assert counters.get("Requests2XX", 0) >= 3, text[:2000]
    assert counters.get("Requests4XX", 0) >= 1, text[:2000]
    assert counters.get("ts_inference_requests_total", 0) >= 4, text[:2000]
    assert "# TYPE Requests2XX counter" in text


def test_config_restricts_urls_and_keeps_secrets_out_of_files_and_output(server, exported_digits):
    props = (server.dir / "config.properties").read_text()
    for line in ("metrics_mode=prometheus", "enable_model_api=true", "disable_token_authorization=false"):
        assert line in props
    ports = json.loads((server.dir / "instance.json").read_text())["ports"]
    assert len(set(ports.values())) == 6, ports  # five listeners + the first worker port, all distinct
    client = server.client()
    resp = client.request("management", "POST", "models", params={"url": "file:///etc/passwd", "model_name": "x"})
    assert resp.status_code >= 400 and "does not match any allowed URL" in resp.text, resp.text
    assert not (server.model_store / "passwd").exists()
    assert (server.dir / KEY_FILE).stat().st_mode & 0o077 == 0  # owner-only

    status = cli("status", f"root={server.cfg.root}", f"instance={server.cfg.instance}")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert {m["name"] for m in state["models"]} >= {exported_digits.name}
    assert all(w["status"] == "READY" for m in state["models"] for v in m["versions"] for w in v["workers"])
    predicted = cli("predict", exported_digits.name, str(SAMPLES[0]), f"root={server.cfg.root}",
                    f"instance={server.cfg.instance}")
    assert predicted.returncode == 0 and "label" in json.loads(predicted.stdout), predicted.stderr

    secrets = [v for v in read_keys(server.dir).values()]
    outputs = [status.stdout, status.stderr, predicted.stdout, predicted.stderr]
    files = [p for p in server.dir.rglob("*") if p.is_file() and p.name != KEY_FILE and p.suffix != ".mar"
             and "models" not in p.relative_to(server.dir).parts]
    for secret in secrets:
        assert not any(secret in out for out in outputs)
        leaked = [p for p in files if secret.encode() in p.read_bytes()]
        assert not leaked, f"a TorchServe key appears in {leaked}"


def test_renewed_keys_replace_the_old_ones(server, exported_digits):
    # TorchServe's keys expire (server.token_expiration_min); the client renews through the token API
    client = server.client()
    old = read_keys(server.dir)
    client.renew_key("inference")
    new = read_keys(server.dir)
    assert new["inference"] != old["inference"] and new["management"] == old["management"]
    url = client.url("inference", f"predictions/{exported_digits.name}")
    stale = requests.post(url, data=SAMPLES[0].read_bytes(), headers={"Authorization": f"Bearer {old['inference']}"},
                          timeout=10)
    assert stale.status_code in (400, 401) and "Token Authorization failed" in stale.text
    assert client.predict(exported_digits.name, SAMPLES[0].read_bytes()).status_code == 200


def test_logs_are_size_rotated_and_quiet_per_request(server, exported_digits):
    # issue 15.4: launcher.log (java stdout) grew ~1.5 KB and ts_log ~3 KB per request, never rotated
    log4j = (server.dir / "log4j2.xml").read_text()
    assert "<Console" not in log4j and 'SizeBasedTriggeringPolicy size="50 MB"' in log4j
    assert log4j.count("<RollingFile") == 5 and 'DefaultRolloverStrategy max="5"' in log4j
    client = server.client()
    body = SAMPLES[0].read_bytes()
    assert client.predict(exported_digits.name, body).status_code == 200
    files = [p for p in (server.dir / "logs").glob("*.log")] + list((server.dir / "metrics").glob("*.log"))
    before = {p: p.stat().st_size for p in files}
    for _ in range(40):
        assert client.predict(exported_digits.name, body).status_code == 200
    grown = {p.name: p.stat().st_size - size for p, size in before.items() if p.stat().st_size - size > 400}
    assert not grown, grown  # 40 requests: no per-request line in any of them (they are at debug)
