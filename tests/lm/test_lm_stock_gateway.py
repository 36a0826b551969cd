"""The archive export.py builds for a trained LM (the real KVDecoder) under a stock TorchServe (plain `torchserve`, no
project code on the workers' path) and streamed through the nginx gateway (TLS, API key): the greedy completion
equals the runtime's own generate() on the exported model.pt, and streamed chunks reach the gateway's client
before the generation ends, joining to the non-streamed answer. One TorchServe serves the whole module."""
from __future__ import annotations

import json
import secrets
import shutil
import time

import pytest
import requests
import torch

from runtime import lm_io
from runtime.lm_generate import DecoderShape, SamplingParams, generate
from serving.gateway.config import GatewayConfig, TLSConfig
from serving.gateway.control import Gateway
from serving.gateway.files import self_signed_cert
from serving.torchserve.client import json_lines
from tests.conftest import require_service
from tests.exported_runs import ExportedRun
from tests.serving.stock_server import stock_torchserve

pytestmark = [pytest.mark.torchserve, pytest.mark.slow]
# greedy, 20 new tokens: the prompt's 7 tokens + 20 stay inside the tiny model's 32-token context
REQUEST = {"prompt": "def f1(x):\n", "max_new_tokens": 20, "temperature": 0.0}


@pytest.fixture(scope="module")
def exported(exported_tiny_lm: ExportedRun) -> ExportedRun:
    """The tiny LM's archive as export.py built it (real KVDecoder, version 1.0)."""
    return exported_tiny_lm


@pytest.fixture(scope="module")
def server(exported: ExportedRun, tmp_path_factory: pytest.TempPathFactory):
    """Plain `torchserve --start` with the archive (folder outside the repository, PYTHONPATH unset)."""
    with stock_torchserve(tmp_path_factory.mktemp("lm_stock") / "ts", [exported.mar]) as ts:
        yield ts


@pytest.fixture(scope="module")
def gateway(server, exported: ExportedRun, tmp_path_factory: pytest.TempPathFactory):
    """The nginx gateway (TLS, one API key) routing the model to version 1.0 of that TorchServe; a verifying
    HTTPS session with the key; stopped (nginx and keeper gone) afterwards."""
    require_service(shutil.which("nginx") is not None, "nginx is not installed (scripts/services.sh up)")
    root = tmp_path_factory.mktemp("lm_gateway")
    private = root / "private"  # the operator's secrets, outside the gateway folder
    private.mkdir()
    key = secrets.token_hex(32)
    (private / "api_keys").write_text(f"alice:{key}\n")
    cert, tls_key = self_signed_cert(private / "tls")
    gw = Gateway(GatewayConfig(root=str(root), instance="gw", tls=TLSConfig(cert=str(cert), key=str(tls_key)),
                               api_keys_file=str(private / "api_keys"), serve_root=str(server.home.parent),
                               serve_instance=server.home.name, server_name="localhost"))
    gw.start(routes={exported.name: {"champion": exported.version}})
    session = requests.Session()
    session.trust_env = False
    session.verify = str(cert)
    session.headers["X-API-Key"] = key
    try:
        yield gw, session
    finally:
        gw.stop()
        assert gw.pid() is None and gw.keeper_pid() is None


def expected_answer(exported: ExportedRun, request: dict) -> dict:
    """The runtime's own generate() on the exported model.pt (no TorchServe): the answer the handler must give."""
    from tokenizers import Tokenizer

    meta = json.loads((exported.export_dir / "metadata.json").read_text())
    tokenizer = Tokenizer.from_file(str(exported.export_dir / "tokenizer.json"))
    decoder = torch.jit.load(str(exported.model_pt)).eval()
    params = SamplingParams(max_new_tokens=request["max_new_tokens"], temperature=request["temperature"])
    (generation,) = generate(decoder, [tokenizer.encode(request["prompt"]).ids], [params],
                             DecoderShape.from_metadata(meta["decoder"]),
                             lambda ids: tokenizer.decode(ids, skip_special_tokens=True))
    return lm_io.answer(generation)


def test_exported_mar_under_plain_torchserve_answers_the_runtimes_greedy_completion(server, exported):
    assert exported.export_json["status"] == "ok" and exported.export_json["task"] == "language_modeling"
    assert exported.mar.name == f"{exported.name}.mar" and exported.version == "1.0"
    resp = requests.post(server.url("inference", f"predictions/{exported.name}"), json=REQUEST,
                         headers=server.auth("inference"), timeout=60)
    assert resp.status_code == 200, resp.text
    want = expected_answer(exported, REQUEST)
    assert resp.json() == want
    # a real completion, not an immediate end of text: the comparison above means something
    assert want["finish_reason"] == "length" and want["usage"]["completion_tokens"] == REQUEST["max_new_tokens"]
    server.assert_worker_outside_repository(exported.name)
    assert "TextGeneratorHandler: decoder" in (server.logs / "model_log.log").read_text(errors="replace")


def stream_once(session: requests.Session, url: str, answer: dict) -> tuple[dict, list[float], list[dict]]:
    """Stream REQUEST through the gateway: headers, arrivals and chunks, after checking they join to `answer`."""
    sent = time.monotonic()
    with session.post(url, json={**REQUEST, "stream": True}, stream=True, timeout=60) as resp:
        assert resp.status_code == 200, resp.text
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        chunks = list(json_lines(resp))  # (arrival, chunk) per JSON line; one arrival per network read
    assert all(c["finish_reason"] is None for _, c in chunks[:-1])
    assert chunks[-1][1]["finish_reason"] == answer["finish_reason"] and chunks[-1][1]["usage"] == answer["usage"]
    assert "".join(c["text"] for _, c in chunks) == answer["text"]
    assert sum((c["tokens"] for _, c in chunks), []) == answer["tokens"]
    return dict(resp.headers), [t - sent for t, _ in chunks], [c for _, c in chunks]


def stream_checked(session: requests.Session, url: str, answer: dict, tries: int = 3) -> tuple[dict, list[float]]:
    """A stream whose chunks arrive before its end (up to `tries` streams: on two busy cores the client may not be
    scheduled while a 60 ms generation runs; a buffering proxy never passes, however many tries)."""
    for _ in range(tries):
        headers, arrivals, chunks = stream_once(session, url, answer)
        # a buffering proxy hands the body over once generation ended: every line then arrives within a fraction
        # of a millisecond of the last (measured with proxy_buffering on: 0 of 20 were 5 ms early); unbuffered,
        # a decode step (a few ms on these cores) separates each chunk from the next
        early = [t for t in arrivals if arrivals[-1] - t > 0.005]
        if len(early) >= 3:
            break
    assert len(early) >= 3, [(round(t, 4), c["text"]) for t, c in zip(arrivals, chunks)]
    print(f"\nthrough the gateway: {len(chunks)} chunks, first after {arrivals[0] * 1000:.1f} ms, last after "
          f"{arrivals[-1] * 1000:.1f} ms; {len(early)} arrived >= 5 ms before the last")
    return headers, arrivals


@pytest.mark.gateway
def test_stream_through_the_gateway_arrives_before_the_end(gateway, exported):
    gw, session = gateway
    url = gw.url(f"v1/models/{exported.name}:predict")
    whole = session.post(url, json=REQUEST, timeout=60)
    assert whole.status_code == 200, whole.text
    assert whole.headers["X-Model-Version"] == exported.version and whole.json() == expected_answer(exported, REQUEST)
    headers, _ = stream_checked(session, url, whole.json())
    assert "Via" not in headers  # direct proxying: no Python between nginx and TorchServe


@pytest.mark.gateway
def test_a_stream_during_a_token_handover_is_relayed_chunk_by_chunk(gateway, exported):
    """While the keeper renews the token, nginx sends predictions through it: a stream must stay a stream (the
    keeper read the whole answer before passing it on, so every chunk arrived at the end, with a Content-Length)."""
    gw, session = gateway
    url = gw.url(f"v1/models/{exported.name}:predict")
    gw.reload(upstream_mode="keeper", drain=True)  # step 1 of a handover, held while the stream runs
    try:
        whole = session.post(url, json=REQUEST, timeout=60)
        assert whole.status_code == 200 and whole.headers.get("Via") == "1.1 shipyard-keeper", whole.headers
        assert whole.json() == expected_answer(exported, REQUEST)
        headers, _ = stream_checked(session, url, whole.json())
        assert headers["Via"] == "1.1 shipyard-keeper"
    finally:
        gw.reload(upstream_mode="direct", drain=True)
    assert "Via" not in session.post(url, json=REQUEST, timeout=60).headers
