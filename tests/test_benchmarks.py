"""Smoke tests of the benchmark modules (tiny repeat counts): they run and report sane figures, so they cannot rot.

`make bench` itself is not run here (minutes); its figures are ratios measured in one run, never asserted.
"""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from benchmarks import data_loading, startup, training_overhead
from benchmarks.report import markdown
from benchmarks.run import run


@contextmanager
def local_http_server() -> Iterator[str]:
    """A keep-alive HTTP/1.1 server on loopback (its URL); a request with an X-Reject header gets 429."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (stdlib name)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(429 if self.headers.get("X-Reject") else 200)
            self.send_header("Connection", "keep-alive")  # ab -k speaks HTTP/1.0: it reuses only when told
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_training_overhead_measures_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(training_overhead.STEPS, "digits_cnn", (2, 4))
    ours = training_overhead.ours_steps_per_s("digits_cnn", tmp_path, "smoke")
    plain = training_overhead.plain_steps_per_s("digits_cnn", tmp_path)
    bare = training_overhead.bare_lightning_steps_per_s("digits_cnn", tmp_path, "bare_smoke")
    assert ours > 0 and plain > 0 and bare > 0
    timer = json.loads((tmp_path / "timer_smoke.json").read_text())
    assert timer["steps"] == 4 and timer["seconds"] > 0


def test_data_loading_ratio_for_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_loading, "EXPERIMENTS", {"digits_cnn": []})
    result = data_loading.bench(epochs=1, repeats=1, max_batches=2)["digits_cnn"]
    assert result["loader_samples_per_s"] > 0 and result["model_samples_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["loader_samples_per_s"] / result["model_samples_per_s"])


def test_image_folder_fixture_is_a_loadable_image_folder(tmp_path: Path) -> None:
    from datamodules.image_folder import ImageFolderDataModule

    root = data_loading.make_image_folder(tmp_path / "images", classes=2, per_class=12, size=8)
    dm = ImageFolderDataModule(root=str(root), image_size=(8, 8), batch_size=4, val_fraction=0.2, test_fraction=0.2)
    dm.setup("fit")
    assert dm.labels == ["class_0", "class_1"] and not dm.bad_records


@pytest.mark.slow
def test_startup_marker_and_imports() -> None:
    assert startup.plain_to_first_step() > 0
    assert 0 < startup.import_seconds("trainers.run") < 120
    slowest = startup.top_imports("trainers.run")
    assert slowest and {"module", "seconds"} <= set(slowest[0])


def test_first_step_marker_is_missing_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no first-step marker"):
        startup._until_marker(["python3", "-c", "print('no marker here')"])


@pytest.mark.slow
def test_run_writes_json_and_markdown(tmp_path: Path) -> None:
    report = run(quick=True, only={"training_overhead"}, results_dir=tmp_path)
    assert report["sections"]["training_overhead"]["status"] == "ok", report["sections"]
    saved = json.loads((tmp_path / "latest.json").read_text())
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["torch"]
    table = (tmp_path / "latest.md").read_text()
    assert "| train steps/s: digits_cnn |" in table and "| train steps/s: text_transformer |" in table


def test_markdown_lists_failed_sections() -> None:
    report = {"machine": {"cpu": "x", "cores": 2, "torch": "2", "torch_threads": 1, "python": "3", "device": "cpu"},
              "started": "now", "sections": {"serving": {"status": "failed", "error": "RuntimeError: no java"}}}
    assert "**serving** failed: RuntimeError: no java" in markdown(report)


def test_lm_data_tokenize_throughput_and_flat_memory(tmp_path: Path) -> None:
    import numpy as np

    from benchmarks import lm_data
    from datamodules.token_build import tokenize_corpus

    root, files = lm_data.corpus_files(3)
    tokenize_corpus(root, tmp_path / "tok", vocab_size=300, files=files)  # a small BPE for the smoke run
    tokenizer = tmp_path / "tok" / "tokenizer.json"
    speed = lm_data.tokenize_throughput(tmp_path, files, root, tokenizer, repeats=1)
    assert speed["ours_mb_per_s"] > 0 and speed["encode_batch_mb_per_s"] > 0
    assert speed["ratio"] == pytest.approx(speed["ours_mb_per_s"] / speed["encode_batch_mb_per_s"])
    large = lm_data.scaled_copy(tmp_path / "tok", tmp_path / "large", 3)
    small_index = json.loads((tmp_path / "tok" / "index.json").read_text())
    large_index = json.loads((large / "index.json").read_text())
    assert large_index["documents"] == 3 * small_index["documents"] and large_index["tokens"] == 3 * small_index["tokens"]
    lengths = np.load(tmp_path / "tok" / "documents.npy")[:, 2]
    assert np.array_equal(np.load(large / "documents.npy")[:, 2], np.tile(lengths, 3))
    rss = lm_data.peak_rss(large, seq_len=32)
    assert rss["peak_rss_mb"] > 0 and rss["batches"] > 0 and rss["tokens"] > 0


def test_run_knows_the_lm_training_section_and_reports_its_row() -> None:
    """`make bench` runs lm_training (quick and full settings) and the table shows its ratio against the target."""
    from benchmarks.run import SECTIONS, _sections, _settings

    assert "lm_training" in SECTIONS
    assert "lm_training" in _sections(_settings(True), Path("."), {"lm_training"})
    result = {"experiment": "lm_llama_tiny", "plain_tokens_per_s": 1000.0, "shipyard_tokens_per_s": 980.0,
              "ratio": 0.98, "step_ms": {"plain": 80.0, "shipyard": 81.0}}
    report = {"machine": {"cpu": "x", "cores": 2, "torch": "2", "torch_threads": 1, "python": "3", "device": "cpu"},
              "started": "now", "sections": {"lm_training": {"status": "ok", "result": result}}}
    assert "| LM train tokens/s: lm_llama_tiny (81 ms/step) | 980 | 1e+03 (plain loop) | 0.98 | ≥ 0.97 |" in markdown(report)


def test_serving_rows_carry_the_issue_targets() -> None:
    """Rows 10-12 of issue 15: ours/stock >= 0.95 and p50 <= 1.1, batching >= 3 on text_minilm, 0 5xx / 0 lost."""
    side = {"p50_ms": 1.5, "p99_ms": 4.0, "throughput_rps": 500.0, "cpu_ms_per_request": {"worker_python": 1.0}}
    batching = {"clients": 16, "batch_size": 8, "repeats": 24, "batched": {"throughput_rps": 150.0},
                "unbatched": {"throughput_rps": 50.0}, "batched_over_unbatched": 3.0,
                "ratios": {"batched_over_unbatched": {"median": 3.0, "ci95": [2.9, 3.1]}},
                "in_process_ms_per_request": {"batch_1": 16.0, "batch_8": 4.0, "batch_1_over_batch_8": 4.0}}
    serving = {"ours": side, "stock": side, "repeats": 3, "clients": 8, "ours_over_stock_p50": 1.0,
               "ours_over_stock_throughput": 1.0, "batching": {"text_minilm": batching},
               "stock_again": {**side, "throughput_rps": 480.0}, "stock_again_over_stock_throughput": 0.96,
               "stock_again_over_stock_p50": 1.02, "cpu_steal_share": {"median": 0.15, "max": 0.4},
               "ratios": {"ours_over_stock_throughput": {"median": 1.0, "ci95": [0.97, 1.03]},
                          "stock_again_over_stock_throughput": {"median": 0.96, "ci95": [0.94, 0.99]}}}
    load = {"capacity_rps_8_clients": 400.0, "overload": {"offered_over_capacity": 2.0, "status_counts": {200: 9, 429: 9},
                                                         "p50_ms": 3.0, "p99_ms": 9.0, "offered_rps": 800.0,
                                                         "5xx": 0, "lost": 0}}
    report = {"machine": {"cpu": "x", "cores": 2, "torch": "2", "torch_threads": 1, "python": "3", "device": "cpu"},
              "started": "now", "sections": {"serving": {"status": "ok", "result": serving},
                                             "serving_load": {"status": "ok", "result": load}}}
    table = markdown(report)
    # the ratio with the 95 % interval of its median over the rounds, where the run recorded one
    assert ("| req/s, 8 clients, unbatched (ab -k, median of 3 interleaved rounds' ratios) | 500 | "
            "500 (stock BaseHandler) | 1 (95 % interval 0.97-1.03) | ≥ 0.95 |") in table
    assert "| ≤ 1.1 |" in table
    assert ("| req/s, 16 clients, batched (8): text_minilm (median of 24 interleaved rounds' ratios) | 150 | "
            "50 (unbatched) | 3 (95 % interval 2.9-3.1) | ≥ 3 |") in table
    assert "| overload 5xx / lost | 0 / 0 |  |  | 0 / 0 |" in table
    # the A/A control (the same stock archive twice) and the hypervisor's share beside the targets they qualify
    assert ("| A/A control, req/s: the stock archive registered twice (CPU stolen by the hypervisor: median 15 %, "
            "max 40 %) | 480 | 500 (stock BaseHandler) | 0.96 (95 % interval 0.94-0.99) | report |") in table
    assert "| A/A control, HTTP p50 ms | 1.5 | 1.5 (stock BaseHandler) | 1.02 | report |" in table
    # a quick run's latency round is too short for ab to give a p99: the row says so instead of failing
    quick = {**serving, "ours": {**side, "p99_ms": None}}
    report["sections"]["serving"]["result"] = quick
    assert "| HTTP p99 ms, 1 client, unbatched | None | 4 (stock BaseHandler) | n/a (too few requests) | report |" in markdown(report)


def test_interleaved_rounds_through_real_ab_even_with_a_quick_warm_up(tmp_path: Path) -> None:
    """benchmarks.served.interleaved with real `ab -k` against a local server: a quick run's warm-up asks for
    fewer requests than clients (ab refuses -n < -c: 0 complete) and is raised to one per client; every round
    is counted per side; a run that gets no answer names ab's own complaint."""
    from types import SimpleNamespace

    from benchmarks.served import drive, interleaved

    body = tmp_path / "body.bin"
    body.write_bytes(b"x")
    with local_http_server() as url:
        fake = SimpleNamespace(client=SimpleNamespace(url=lambda _api, path: f"{url}/{path}"), body=body,
                               auth="X-Any: 1", content_type="application/octet-stream")
        fake.ab = lambda name, requests, clients: {**drive(fake, name, requests, clients), "cpu_steal_share": 0.0,
                                                   "cpu_ms_per_request": {"frontend_java": 0.0, "worker_python": 0.0}}
        out = interleaved(fake, ["a", "b"], warmup=8, repeats=3, sequential=4, requests=32, clients=16)
        with pytest.raises(RuntimeError, match="0 complete; ab said: .*concurrency"):
            drive(fake, "a", 4, 16)
    for side in ("a", "b"):
        assert len(out[side]["rps_repeats"]) == len(out[side]["p50_repeats"]) == 3
        assert out[side]["throughput_rps"] > 0 and out[side]["p50_ms"] > 0
    assert out["settings"]["repeats"] == 3 and out["settings"]["clients"] == 16


def test_open_loop_client_sends_on_schedule_and_records_statuses() -> None:
    """benchmarks/openloop.py against a local HTTP server: every scheduled request answered, statuses kept."""
    import asyncio

    from benchmarks.openloop import run as open_loop

    with local_http_server() as base:
        url = f"{base}/p"
        records = asyncio.run(open_loop(url, b"x", [], rate=50, seconds=0.4, connections=2))
        rejected = asyncio.run(open_loop(url, b"x", ["X-Reject: 1"], rate=50, seconds=0.2, connections=2))
    assert len(records) == 20 and {status for _, status, _ in records} == {200}
    assert len(rejected) == 10 and {status for _, status, _ in rejected} == {429}


def test_stock_topk_baseline_answers_as_our_handler_does(exported_digits, tmp_path: Path) -> None:
    """benchmarks/stock_topk_handler.py: the same answer shape, labels and content type as ours, through the
    real worker code (so the "what the answer costs" row compares like with like)."""
    from benchmarks.serving_compare import REPO, build_stock_mar
    from serving.torchserve.inprocess import InProcessWorker

    body = sorted((REPO / "data" / "digits_samples").glob("*.png"))[0].read_bytes()
    topk_mar = build_stock_mar(exported_digits.model_pt, tmp_path, REPO / "benchmarks" / "stock_topk_handler.py",
                               "stock_topk_digits")
    _, (theirs,) = InProcessWorker(topk_mar, tmp_path / "topk").predict([(body, "application/octet-stream")])
    _, (ours,) = InProcessWorker(exported_digits.mar, tmp_path / "ours").predict([(body, "application/octet-stream")])
    assert theirs.status == ours.status == 200 and theirs.content_type == ours.content_type == "application/json"
    assert theirs.json.keys() == ours.json.keys() and len(theirs.json["top_k"]) == len(ours.json["top_k"]) == 5
    assert [t["label"] for t in theirs.json["top_k"]] == [t["label"] for t in ours.json["top_k"]]


def test_paired_ratio_takes_the_median_of_same_round_ratios() -> None:
    """A slow round (both sides slow) moves neither side's ratio; the median ignores one odd round."""
    from benchmarks.served import paired_ratio

    ours, stock = {"rps_repeats": [450.0, 225.0, 500.0]}, {"rps_repeats": [500.0, 250.0, 250.0]}
    ratio = paired_ratio(ours, stock, "rps_repeats")
    assert ratio["median"] == pytest.approx(0.9) and ratio["rounds"] == [0.9, 0.9, 2.0]
    assert ratio["ci95"] is None  # no interval of 3 rounds covers 95 %: none is claimed


def test_median_interval_is_the_binomial_order_statistics() -> None:
    """The distribution-free 95 % interval of a median: of 24 rounds the 7th and 18th smallest
    (P(Binomial(24, 1/2) <= 6) = 0.011 <= 0.025 < P(<= 7) = 0.032), the whole range for 8 rounds, and the
    range for 6 (P(<= 0) = 0.016), none for 5 or fewer (P(<= 0) = 0.031 > 0.025); a round without a p99 does
    not break the median."""
    import random

    from benchmarks.served import _median, median_interval

    rounds = [float(v) for v in range(1, 25)]
    random.Random(0).shuffle(rounds)
    assert median_interval(rounds) == [7.0, 18.0]
    assert median_interval(rounds, confidence=0.5) == [10.0, 15.0]  # P(<= 9) = 0.15 <= 0.25 < P(<= 10) = 0.27
    assert median_interval([3.0, 1.0, 2.0, 8.0, 5.0, 4.0, 7.0, 6.0]) == [1.0, 8.0]
    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0, 6.0]) == [1.0, 6.0]
    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0]) is None and median_interval([0.9]) is None
    assert _median([None, 3.0, 1.0]) == 2.0 and _median([None]) is None
