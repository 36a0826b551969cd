"""The text-generation archive export.py builds for a trained LM (the real KVDecoder) under one real TorchServe
(dynamic batching on): streamed chunks arrive before the end over HTTP and gRPC, batches really form (the
handler's logged sizes), malformed requests inside a batch get 4xx naming the field, one seed gives one answer
whatever the batch, and the workers run without project code."""
from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.conftest import REPO
from tests.exported_runs import ExportedRun
from tests.lm.lm_fixtures import GOOD, MALFORMED, RAW
from tests.serving.servers import running_server

pytestmark = [pytest.mark.torchserve, pytest.mark.slow]
NAME = "lm_llama_tiny"  # the experiment's name: what export.py names the model in its archive
# the code corpus the tiny LM was trained on: its greedy completion is visible text (newlines, spaces, code)
CODE_PROMPT = {"prompt": "def f1(x):\n", "max_new_tokens": 20, "temperature": 0.0}
BATCH = re.compile(r"text generation batch: size=(\d+) valid=(\d+)")


@pytest.fixture(scope="module")
def server(exported_tiny_lm: ExportedRun, tmp_path_factory):
    """One TorchServe for the module: the tiny LM's archive, batch_size 8, max_batch_delay 300 ms, no project code on
    the workers' path (PYTHONPATH unset: the archive's own runtime/ is all they have)."""
    assert exported_tiny_lm.name == NAME
    root = tmp_path_factory.mktemp("lm_ts")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONPATH", raising=False)
        with running_server(root / "serve", [exported_tiny_lm.mar],
                            overrides=["model.batch_size=8", "model.max_batch_delay=300"]) as ts:
            yield ts


def batch_sizes(server) -> list[int]:
    text = (server.logs / "model_log.log").read_text(errors="replace")
    return [int(m.group(1)) for m in BATCH.finditer(text)]


def post(client, obj) -> tuple[int, dict]:
    resp = client.predict(NAME, json.dumps(obj).encode(), content_type="application/json", timeout=60)
    return resp.status_code, resp.json()


def burst(client, bodies: list[tuple[bytes, str]]) -> list:
    """Send all bodies at once (one thread each) so TorchServe batches them."""
    barrier = threading.Barrier(len(bodies))

    def send(item):
        barrier.wait()
        return client.predict(NAME, item[0], content_type=item[1], timeout=60)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_http_stream_chunks_arrive_before_the_end(server):
    client = server.client()
    request = CODE_PROMPT
    status, whole = post(client, request)
    assert status == 200
    sent = time.monotonic()
    chunks = list(client.predict_stream(NAME, json.dumps({**request, "stream": True}).encode(), timeout=60))
    arrivals = [t - sent for t, _ in chunks]
    assert len(chunks) >= 3, chunks
    assert all(c["finish_reason"] is None for _, c in chunks[:-1])
    last = chunks[-1][1]
    assert last["finish_reason"] == whole["finish_reason"] and last["usage"] == whole["usage"]
    assert "".join(c["text"] for _, c in chunks) == whole["text"]
    assert sum((c["tokens"] for _, c in chunks), []) == whole["tokens"]
    assert arrivals[0] < arrivals[-1] and arrivals == sorted(arrivals)
    print("\nstreamed chunks (s after the request):", [(round(t, 4), c["text"]) for t, c in zip(arrivals, (c for _, c in chunks))])


def test_grpc_stream_chunks(server):
    from serving.torchserve.grpc_client import TorchServeGrpcClient

    _, whole = post(server.client(), CODE_PROMPT)
    with TorchServeGrpcClient(server.dir) as rpc:
        parts = [json.loads(p) for p in rpc.stream(NAME, {"data": json.dumps({**CODE_PROMPT, "stream": True}).encode()})]
    assert len(parts) >= 2 and parts[-1]["finish_reason"] == whole["finish_reason"]
    assert "".join(p["text"] for p in parts) == whole["text"]


def worker_pid(server) -> int:
    (model,) = server.client().management("GET", f"models/{NAME}")
    return model["workers"][0]["pid"]


def test_grpc_stream_calls_answered_at_once_leave_the_worker_alive(server):
    """A StreamPredictions call that sends no intermediate chunk (a rejected body, a request without "stream", a
    one-token stream) gets its one answer; the frontend threw a NullPointerException on it and restarted the worker."""
    from serving.torchserve.grpc_client import TorchServeGrpcClient

    pid = worker_pid(server)
    bodies = {"rejected": b'{"prompt": ""}', "not streamed": json.dumps(CODE_PROMPT).encode(),
              "one token": json.dumps({**CODE_PROMPT, "max_new_tokens": 1, "stream": True}).encode()}
    with TorchServeGrpcClient(server.dir) as rpc:
        answers = {name: [json.loads(p) for p in rpc.stream(NAME, {"data": body})] for name, body in bodies.items()}
    assert answers["rejected"] == [answers["rejected"][0]] and answers["rejected"][0]["code"] == "empty_input"
    assert [a["text"] for a in answers["not streamed"]] == [post(server.client(), CODE_PROMPT)[1]["text"]]
    (one,) = answers["one token"]
    assert one["finish_reason"] == "length" and one["usage"]["completion_tokens"] == 1
    assert worker_pid(server) == pid
    assert "Backend worker thread exception" not in (server.logs / "ts_log.log").read_text(errors="replace")


def test_batches_form_and_malformed_requests_inside_them_get_4xx(server):
    client = server.client()
    before = len(batch_sizes(server))
    cases = ([(name, json.dumps(obj).encode(), "application/json", status, code, field)
              for name, obj, status, code, field in MALFORMED] + RAW)[:15] + RAW[:2]
    good = (json.dumps(GOOD).encode(), "application/json")
    for start in range(0, len(cases), 6):  # 6 bad + 2 good per burst: each burst fills a batch of 8
        group = cases[start:start + 6]
        answers = burst(client, [good, good] + [(c[1], c[2]) for c in group])
        for resp in answers[:2]:
            assert resp.status_code == 200 and resp.json()["finish_reason"] in ("length", "stop")
        for case, resp in zip(group, answers[2:]):
            name, status, code, field = case[0], case[3], case[4], case[5]
            assert resp.status_code == status, (name, resp.status_code, resp.text)
            assert resp.json()["code"] == code and resp.json()["field"] == field, (name, resp.text)
    sizes = batch_sizes(server)[before:]
    assert max(sizes) > 1, sizes  # dynamic batching really formed batches of several requests
    assert len(cases) >= 15


def test_same_seed_same_answer_whatever_the_batch(server):
    client = server.client()
    mine = {"prompt": "hello world", "max_new_tokens": 10, "temperature": 1.1, "top_k": 40, "seed": 2024}
    _, alone = post(client, mine)
    others = [{"prompt": p, "max_new_tokens": n, "temperature": 0.9, "seed": n} for p, n in
              (("a dog", 3), ("numbers 0123", 15), ("the", 7))]
    before = len(batch_sizes(server))
    answers = burst(client, [(json.dumps(b).encode(), "application/json") for b in [*others, mine]])
    assert max(batch_sizes(server)[before:]) > 1
    assert answers[-1].json() == alone


def test_cli_predict_prompt_stream(server):
    import subprocess
    import sys

    args = [sys.executable, "-m", "serving", "predict", NAME, "--prompt", "hello", "--max-new-tokens", "6",
            "--temperature", "0", f"root={server.dir.parent}", f"instance={server.dir.name}"]
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    whole = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    streamed = subprocess.run([*args, "--stream"], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert whole.returncode == 0 and streamed.returncode == 0, whole.stderr + streamed.stderr
    answer = json.loads(whole.stdout)
    text, summary = streamed.stdout.rsplit("\n{", 1)
    assert text == answer["text"] and json.loads("{" + summary)["usage"] == answer["usage"]


def test_workers_run_the_archive_without_the_repository(server):
    worker = psutil.Process(worker_pid(server))
    assert str(REPO) not in worker.environ().get("PYTHONPATH", "") and str(REPO) not in worker.cwd()
    assert "TextGeneratorHandler: decoder" in (server.logs / "model_log.log").read_text(errors="replace")
