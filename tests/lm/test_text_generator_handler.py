"""The text-generation handler inside TorchServe's own worker code (InProcessWorker: real Context, no Java):
malformed requests inside a batch get a 4xx naming the field while the rest are answered, answers equal
runtime/lm_generate.py over the same model, seeds hold across batches, prediction logs are redacted."""
from __future__ import annotations

import json

import pytest
import torch

from runtime.lm_generate import DecoderShape, SamplingParams, generate
from serving.torchserve.inprocess import InProcessWorker
from tests.lm.lm_fixtures import GOOD, JSON, MALFORMED, RAW, body, build_lm_mar, model_folder


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """(worker, decoder, tokenizer, shape) of a tiny LM archive loaded through TorchServe's worker code."""
    from tokenizers import Tokenizer

    root = tmp_path_factory.mktemp("lm_handler")
    folder = model_folder(root / "model")
    mar = build_lm_mar(folder, root / "mar")
    worker = InProcessWorker(mar, root / "worker", batch_size=16)
    meta = json.loads((folder / "metadata.json").read_text())
    return worker, torch.jit.load(str(folder / "model.pt")), Tokenizer.from_file(str(folder / "tokenizer.json")), \
        DecoderShape.from_metadata(meta["decoder"])


def test_malformed_requests_inside_a_batch_get_4xx_naming_the_field(lm):
    worker = lm[0]
    cases = [(name, *body(obj), status, code, field) for name, obj, status, code, field in MALFORMED] + RAW
    assert len(cases) >= 15
    requests = []
    for case in cases:
        requests += [body(GOOD), (case[1], case[2])]
    code, answers = worker.predict(requests)
    assert code == 200 and len(answers) == len(requests)
    for n, (name, _, _, status, err_code, field) in enumerate(cases):
        ok, bad = answers[2 * n], answers[2 * n + 1]
        assert ok.status == 200 and ok.json["finish_reason"] in ("length", "stop"), name
        assert bad.status == status, (name, bad.status, bad.body)
        assert bad.json["code"] == err_code and bad.json["field"] == field, (name, bad.json)
        assert bad.content_type == JSON and bad.json["error"], name
    assert len({a.body for a in answers[0::2]}) == 1  # the good request's answer never depends on its neighbours


def test_answers_equal_generate_and_seed_holds_across_batches(lm):
    worker, decoder, tok, shape = lm
    sampled = {"prompt": "hello", "max_new_tokens": 8, "temperature": 1.2, "top_p": 0.9, "seed": 7}
    _, (alone,) = worker.predict([body(sampled)])
    _, batch = worker.predict([body(GOOD), body({"prompt": "a dog ran in", "temperature": 0.8, "seed": 1,
                                                 "max_new_tokens": 3}), body(sampled)])
    assert alone.json == batch[2].json
    (expected,) = generate(decoder, [tok.encode("hello").ids], [SamplingParams(max_new_tokens=8, temperature=1.2,
                                                                               top_p=0.9, seed=7)],
                           shape, lambda t: tok.decode(t, skip_special_tokens=True))
    assert alone.json == {"text": expected.text, "tokens": expected.tokens, "finish_reason": expected.finish_reason,
                          "usage": {"prompt_tokens": expected.prompt_tokens,
                                    "completion_tokens": expected.completion_tokens}}


def test_prediction_log_has_lengths_and_redacted_text(lm, tmp_path, monkeypatch):
    from runtime.prediction_log import PredictionLogger, PredictionLogSettings

    worker = lm[0]
    handler = worker.handler
    saved = handler.log
    handler.log = PredictionLogger(PredictionLogSettings(sample_rate=1.0, folder=str(tmp_path)), "tiny_lm", "1.0")
    try:
        worker.predict([body({"prompt": "mail me at jane.doe@example.com please", "max_new_tokens": 4,
                              "temperature": 0.0}), body({"prompt": ""})])
        handler.log.flush()
        (record,) = [json.loads(line) for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()]
    finally:
        handler.log.close()
        handler.log = saved
    assert record["kind"] == "text_generation" and "jane.doe" not in json.dumps(record)
    assert "[EMAIL]" in record["text"] and record["features"]["completion_tokens"] == 4
    assert record["features"]["prompt_tokens"] > 5 and record["prediction"]["label"] == "length"
