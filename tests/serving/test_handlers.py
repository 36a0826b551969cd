"""The handlers inside TorchServe's own worker code (real Context/RequestProcessor, no Java)."""
from __future__ import annotations

import base64
import io
import json
import logging
from collections import Counter
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from datamodules.digits import digits_images
from runtime.preprocessing import PreprocessSpec, load_tokenizer, postprocess, preprocess_image_bytes, tokenize
from serving.export.run_loading import build_net, resolve_checkpoint
from tests.serving.isolation import BLOCKED_SERVING_HOST, run_isolated
from serving.torchserve import inprocess
from serving.torchserve.inprocess import InProcessWorker

INPROCESS_DIR = Path(inprocess.__file__).parent  # the module runs stand-alone: stdlib + ts only

JSON = "application/json"
TICKETS = ["I was charged twice for my subscription this month", "My parcel has not arrived after two weeks",
           "I cannot log in to my account, password reset fails", "The app crashes when I open settings",
           "{urgent} please update the billing address on my invoice", "Where is my order? Tracking shows nothing",
           "How do I change the email on my profile", "Error 500 when uploading a file"]


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def digits(exported_digits, tmp_path_factory):
    """(worker, eager net, spec, PNG bytes of 8 real digits)."""
    worker = InProcessWorker(exported_digits.mar, tmp_path_factory.mktemp("digits_worker"))
    net = build_net(OmegaConf.load(exported_digits.run_dir / "config.yaml"), resolve_checkpoint(exported_digits.run_dir, "best"))
    images, _ = digits_images()
    return worker, net, PreprocessSpec.load(exported_digits.export_dir / "preprocess.json"), [png(i) for i in images[:8]]


@pytest.fixture(scope="module")
def text(exported_text, tmp_path_factory):
    """(worker, eager net, spec with the exported tokenizer, tokenizer)."""
    worker = InProcessWorker(exported_text.mar, tmp_path_factory.mktemp("text_worker"))
    net = build_net(OmegaConf.load(exported_text.run_dir / "config.yaml"), resolve_checkpoint(exported_text.run_dir, "best"))
    spec = PreprocessSpec.load(exported_text.export_dir / "preprocess.json")
    spec.tokenizer_dir = str(exported_text.export_dir / "tokenizer")
    return worker, net, spec, load_tokenizer(spec.tokenizer_dir)


def eager_image(net, spec, bodies):
    with torch.no_grad():
        return postprocess(net(torch.stack([preprocess_image_bytes(b, spec) for b in bodies])), spec)


def eager_text(net, spec, tokenizer, texts):
    enc = tokenize(texts, tokenizer, spec)
    with torch.no_grad():
        return postprocess(net(enc["input_ids"], enc["attention_mask"]), spec)


def assert_same(answer, expected, top_k=5):
    assert answer["label"] == expected["label"]
    assert answer["probability"] == pytest.approx(expected["probability"], abs=1e-5)
    assert [t["label"] for t in answer["top_k"]] == [t["label"] for t in expected["top_k"]][:top_k]
    probs = [t["probability"] for t in answer["top_k"]]
    assert probs == sorted(probs, reverse=True) and len(probs) == top_k and sum(probs) <= 1 + 1e-6


class CountingModel:
    """Wraps the loaded TorchScript model to count forwards and record batch sizes."""

    def __init__(self, model):
        self.model, self.batches = model, []

    def __call__(self, *args):
        self.batches.append(args[0].shape[0])
        return self.model(*args)


def test_image_batch_of_raw_bytes_json_base64_and_jpeg_matches_eager(digits):
    worker, net, spec, pngs = digits
    jpeg = png(Image.open(io.BytesIO(pngs[5])).convert("RGB"), "JPEG")
    bodies = [(pngs[0], "image/png"), (pngs[1], "application/octet-stream"),
              (json.dumps({"image": base64.b64encode(pngs[2]).decode()}).encode(), JSON),
              (json.dumps({"data": base64.b64encode(pngs[3]).decode(), "top_k": 3}).encode(), JSON),
              (json.dumps({"image": "data:image/png;base64," + base64.b64encode(pngs[4]).decode()}).encode(), JSON),
              (jpeg, "image/jpeg")]
    counting = CountingModel(worker.handler.model)
    worker.handler.model = counting
    try:
        code, answers = worker.predict(bodies)
    finally:
        worker.handler.model = counting.model
    assert code == 200 and counting.batches == [6]  # one forward for the whole batch
    expected = eager_image(net, spec, pngs[:5] + [jpeg])
    for i, (answer, exp) in enumerate(zip(answers, expected)):
        assert answer.status == 200 and answer.content_type == JSON
        assert_same(answer.json, exp, top_k=3 if i == 3 else 5)


BAD_IMAGES = {
    "empty body": ((b"", "application/octet-stream"), 400, "empty_input"),
    "truncated png": (("PNG", slice(0, 60)), 400, "bad_image"),
    "not an image": ((b"\x00\x01garbage" * 10, "application/octet-stream"), 400, "bad_image"),
    "plain text": ((b"hello", "text/plain"), 400, "wrong_type"),
    "json list": ((b"[1, 2, 3]", JSON), 400, "wrong_shape"),
    "json missing field": ((b'{"picture": "abc"}', JSON), 400, "missing_field"),
    "json unknown field": ((b'{"image": "", "extra": 1}', JSON), 400, "unknown_field"),
    "json wrong type": ((b'{"image": 42}', JSON), 400, "wrong_type"),
    "json NaN": ((b'{"image": "aGk=", "top_k": NaN}', JSON), 400, "non_finite_number"),
    "json Infinity": ((b'{"image": "aGk=", "top_k": Infinity}', JSON), 400, "non_finite_number"),
    "invalid json": ((b'{"image": ', JSON), 400, "bad_json"),
    "invalid base64": ((b'{"image": "not base64!!"}', JSON), 400, "bad_base64"),
    "top_k out of range": (("B64", {"top_k": 11}), 400, "bad_value"),
    "top_k not int": (("B64", {"top_k": "3"}), 400, "wrong_type"),
    "too many pixels": (("BIG", None), 413, "too_large"),
    "too many bytes": ((b"\x89PNG" + b"0" * 10_000_001, "image/png"), 413, "too_large"),
}


def _materialise(body, pngs):
    if body[0] == "PNG":
        return pngs[0][body[1]], "image/png"
    if body[0] == "B64":
        return json.dumps({"image": base64.b64encode(pngs[0]).decode(), **body[1]}).encode(), JSON
    if body[0] == "BIG":
        return png(Image.new("L", (7000, 6000))), "image/png"
    return body


def test_every_bad_image_request_gets_its_own_4xx_while_the_rest_succeed(digits):
    worker, net, spec, pngs = digits
    names = list(BAD_IMAGES)
    batch, kinds = [], []
    for i, name in enumerate(names):  # interleave: good, bad, good, bad, ...
        batch.append((pngs[i % 8], "image/png"))
        kinds.append(None)
        batch.append(_materialise(BAD_IMAGES[name][0], pngs))
        kinds.append(name)
    code, answers = worker.predict(batch)
    assert code == 200 and len(answers) == len(batch)
    expected = iter(eager_image(net, spec, [b for (b, _), k in zip(batch, kinds) if k is None]))
    for answer, kind in zip(answers, kinds):
        assert answer.content_type == JSON, kind
        if kind is None:
            assert answer.status == 200
            assert_same(answer.json, next(expected))
            continue
        _, status, code_name = BAD_IMAGES[kind]
        assert (answer.status, answer.json["code"]) == (status, code_name), (kind, answer.json)
        assert answer.json["error"] and answer.phrase, kind


def test_text_json_and_plain_bodies_match_eager(text):
    worker, net, spec, tokenizer = text
    bodies = [(json.dumps({"text": t}).encode(), JSON) if i % 3 == 0 else
              ((t.encode(), "text/plain") if i % 3 == 1 else (t.encode(), "application/octet-stream"))
              for i, t in enumerate(TICKETS)]
    code, answers = worker.predict(bodies)
    assert code == 200
    for answer, exp in zip(answers, eager_text(net, spec, tokenizer, TICKETS)):
        assert answer.status == 200 and answer.content_type == JSON
        assert_same(answer.json, exp, top_k=4)  # 4 classes: top-k is capped


BAD_TEXTS = {
    "empty body": ((b"", "text/plain"), 400, "empty_input"),
    "blank text": ((b"   \n ", "text/plain"), 400, "empty_input"),
    "non-utf8 plain": ((b"caf\xe9 au lait", "text/plain"), 400, "bad_encoding"),
    "non-utf8 json": ((b'{"text": "caf\xe9"}', JSON), 400, "bad_encoding"),
    "json number": ((b'{"text": 5}', JSON), 400, "wrong_type"),
    "json null": ((b'{"text": null}', JSON), 400, "wrong_type"),
    "json list": ((b'["a", "b"]', JSON), 400, "wrong_shape"),
    "json missing field": ((b'{"message": "hi"}', JSON), 400, "missing_field"),
    "json NaN": ((b'{"text": "hi", "top_k": NaN}', JSON), 400, "non_finite_number"),
    "invalid json": ((b'{"text": "unterminated', JSON), 400, "bad_json"),
    "too long": ((json.dumps({"text": "x" * 20_001}).encode(), JSON), 413, "too_large"),
}


def test_every_bad_text_request_gets_its_own_4xx_while_the_rest_succeed(text):
    worker, net, spec, tokenizer = text
    batch, kinds = [], []
    for i, name in enumerate(BAD_TEXTS):
        batch += [(TICKETS[i % 8].encode(), "text/plain"), BAD_TEXTS[name][0]]
        kinds += [None, name]
    counting = CountingModel(worker.handler.model)
    worker.handler.model = counting
    try:
        code, answers = worker.predict(batch)
    finally:
        worker.handler.model = counting.model
    assert code == 200 and counting.batches == [len(BAD_TEXTS)]
    good = [TICKETS[i % 8] for i in range(len(BAD_TEXTS))]
    expected = iter(eager_text(net, spec, tokenizer, good))
    for answer, kind in zip(answers, kinds):
        assert answer.content_type == JSON
        if kind is None:
            assert answer.status == 200
            assert_same(answer.json, next(expected), top_k=4)
        else:
            assert (answer.status, answer.json["code"]) == BAD_TEXTS[kind][1:], (kind, answer.json)


def test_prediction_hook_sees_each_good_request_once(digits):
    worker, _, _, pngs = digits
    seen = []
    worker.handler.on_predictions = lambda inputs, predictions, logits: seen.append((inputs, predictions, logits))
    try:
        worker.predict([(pngs[0], "image/png"), (b"", "image/png"), (pngs[1], "image/png")])
    finally:
        del worker.handler.on_predictions
    [(inputs, predictions, logits)] = seen
    assert [i["index"] for i in inputs] == [0, 2] and [i["request_id"] for i in inputs] == ["req-0", "req-2"]
    assert all(isinstance(i["raw"], Image.Image) for i in inputs)
    assert len(predictions) == 2 and logits.shape == (2, 10)


def test_a_flush_prints_one_class_counter_per_label_and_one_confidence_per_prediction(digits, caplog):
    """The frontend parses every metric line a worker prints: counters are summed per flush (once a second,
    runtime/prediction_metrics.py), the histogram keeps one observation per prediction."""
    worker, _, _, pngs = digits
    worker.handler.observer.metrics.flush()  # what earlier tests left
    with caplog.at_level(logging.INFO, logger="ts.metrics"):
        _, answers = worker.predict([(pngs[0], "image/png")] * 6 + [(pngs[1], "image/png")] * 2)
        worker.handler.observer.metrics.flush()
    labels = Counter(a.json["label"] for a in answers)
    lines = [line.removeprefix("[METRICS]") for r in caplog.records for line in r.getMessage().splitlines()]
    per_class = {line.split("#Label:")[1].split(",")[0]: int(line.split(":")[1].split("|")[0])
                 for line in lines if line.startswith("PredictionsPerClass.")}
    assert per_class == dict(labels) and sum(line.startswith("PredictionsPerClass.") for line in lines) == len(labels)
    assert sum(line.startswith("PredictionConfidence.") for line in lines) == 8


def test_archives_serve_without_transformers_lightning_or_project_code(exported_digits, exported_text, text,
                                                                      tmp_path):
    """A stock TorchServe host: torch, ts, PIL, tokenizers; the text path must use `tokenizers`."""
    _, net, spec, tokenizer = text
    code = f"""
import json, sys, pathlib
sys.path.insert(0, {str(INPROCESS_DIR)!r})
import inprocess as ts_inprocess
texts = {TICKETS!r}
worker = ts_inprocess.InProcessWorker(pathlib.Path({str(exported_text.mar)!r}), pathlib.Path({str(tmp_path)!r}))
assert type(worker.handler.tokenizer).__name__ == "_PlainTokenizer", type(worker.handler.tokenizer)
code, answers = worker.predict([(t.encode(), "text/plain") for t in texts])
image_worker = ts_inprocess.InProcessWorker(pathlib.Path({str(exported_digits.mar)!r}), pathlib.Path({str(tmp_path)!r}))
image_code, image_answers = image_worker.predict([(b"", "image/png")])
print(json.dumps({{"code": code, "answers": [a.json for a in answers], "image": [image_code, image_answers[0].status],
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED_SERVING_HOST!r})}}))
"""
    result = json.loads(run_isolated(code, blocked=BLOCKED_SERVING_HOST).stdout.strip().splitlines()[-1])
    assert result["code"] == 200 and result["modules"] == [] and result["image"] == [200, 400]
    for answer, exp in zip(result["answers"], eager_text(net, spec, tokenizer, TICKETS)):
        assert_same(answer, exp, top_k=4)


def test_text_batches_pad_to_the_longest_text_only_when_the_model_masks_padding(text):
    """Padding every ticket to max_length made the forward 2-4x slower; a model that reads pads keeps it."""
    from runtime.text_padding import padding_for

    worker, _, spec, tokenizer = text
    assert worker.handler.padding == "longest"  # the exported text model masks its padding

    def reads_padding(input_ids, attention_mask):  # mean over every position, pads included
        return torch.stack([input_ids.float().mean(1), attention_mask.float().mean(1)], dim=1)

    def masks_padding(input_ids, attention_mask):
        mask = attention_mask.float()
        return torch.stack([(input_ids * mask).sum(1) / mask.sum(1), mask.sum(1)], dim=1)

    assert padding_for(reads_padding, tokenizer, spec) == "max_length"
    assert padding_for(masks_padding, tokenizer, spec) == "longest"
