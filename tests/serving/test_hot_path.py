"""The handler's per-request fast paths give the same bytes and numbers as the plain code they replaced.

Each fast path exists for served throughput (benchmarks/results/PROFILE.md, serving; issue 15 row 10). What
they must keep: the answer JSON byte for byte, training's image standardisation bit for bit, the logged logit
features of the drift reference, and prediction-log records written, counted and rotated, never lost.
"""
from __future__ import annotations

import json
import math
import os
import random
import time

import numpy as np
import pytest
import torch
from PIL import Image

from runtime import classifier_io
from runtime.line_writer import RotatingLineWriter
from runtime.prediction_features import logit_features
from runtime.preprocessing import PreprocessSpec, image_to_tensor, normalize_image


def _spec(labels: list[str], channels: int = 1, size: tuple[int, int] = (8, 8), **kw) -> PreprocessSpec:
    mean, std = ([0.3056], [0.3778]) if channels == 1 else ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    return PreprocessSpec(kind="image", labels=labels, image_size=list(size), channels=channels, mean=mean, std=std,
                          **kw)


@pytest.mark.parametrize("labels", [[str(i) for i in range(10)], ['say "hi"', "café", "a\\b", "tab\there", "\u2028"]])
def test_answer_json_is_json_dumps_byte_for_byte(labels):
    spec = _spec(labels)
    rng = random.Random(0)
    for _ in range(300):
        logits = torch.randn(4, len(labels)) * rng.choice([1e-3, 1.0, 40.0])
        for answer in classifier_io.format_predictions(logits, spec, [None, 1, 2, len(labels)]):
            assert classifier_io.answer_json(answer) == json.dumps(answer)
    nan = classifier_io.format_predictions(torch.full((1, len(labels)), float("nan")), spec)[0]
    assert classifier_io.answer_json(nan) == json.dumps(nan)  # whatever the generic encoder writes, not 'nan'


def test_temperature_one_skips_no_rounding_and_other_temperatures_still_apply():
    logits = torch.randn(16, 10) * 5
    plain = classifier_io.format_predictions(logits, _spec([str(i) for i in range(10)]))
    assert [a["probability"] for a in plain] == torch.softmax(logits, -1).max(-1).values.tolist()
    hot = classifier_io.format_predictions(logits, _spec([str(i) for i in range(10)], temperature=2.0))
    assert [a["probability"] for a in hot] == torch.softmax(logits / 2.0, -1).max(-1).values.tolist()


def _standardised_with_torch_ops(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    """What image_to_tensor computed before its lookup table: six torch ops per image."""
    image = normalize_image(image, spec)
    image = image.convert("L" if spec.channels == 1 else "RGB")
    height, width = spec.image_size
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    raw = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    x = raw.view(height, width, spec.channels).permute(2, 0, 1).float().div_(255.0)
    return (x - torch.tensor(spec.mean).view(-1, 1, 1)) / torch.tensor(spec.std).view(-1, 1, 1)


@pytest.mark.parametrize("channels,size", [(1, (8, 8)), (3, (24, 32))])
def test_image_standardisation_is_bit_identical_to_the_torch_ops(channels, size):
    spec = _spec(["a", "b"], channels, size)
    rng = np.random.default_rng(0)
    every_byte = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).convert("RGB")
    images = [every_byte] + [Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)) for _ in range(20)]
    for image in images:
        expected, got = _standardised_with_torch_ops(image, spec), image_to_tensor(image, spec)
        assert got.dtype == torch.float32 and got.shape == expected.shape and torch.equal(got, expected)
    got.add_(1.0)  # the result is the caller's own tensor: writing it must not change the next image's values
    assert torch.equal(image_to_tensor(images[1], spec), _standardised_with_torch_ops(images[1], spec))


def test_logit_features_match_float64_numpy_and_name_non_finite_rows():
    logits = torch.randn(50, 7) * 3
    x = logits.double().numpy()
    for temperature in (1.0, 0.5):
        rows = logit_features(logits, temperature)
        z = np.exp(x / temperature - (x / temperature).max(-1, keepdims=True))
        np.testing.assert_allclose([r["confidence"] for r in rows], z.max(-1) / z.sum(-1), rtol=1e-12)
        np.testing.assert_allclose([r["logit_norm"] for r in rows], np.linalg.norm(x, axis=-1), rtol=1e-12)
        np.testing.assert_allclose([r["logit_std"] for r in rows], x.std(-1), rtol=1e-12)
        assert [r["logit_max"] for r in rows] == x.max(-1).tolist()
    bad = logit_features(torch.tensor([[1.0, float("inf"), 0.0], [float("nan"), 1.0, 2.0]]))
    assert all(math.isnan(v) for row in bad for v in row.values())


def _lines(folder) -> list[str]:
    return [line for p in sorted(folder.iterdir()) for line in p.read_text().splitlines()]


def test_line_writer_writes_in_the_background_and_keeps_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        writer = RotatingLineWriter(tmp_path / "logs" / "p.jsonl", max_bytes=1 << 20, backup_count=2, capacity=100,
                                    interval=0.05)
        for i in range(10):
            assert writer.append(json.dumps({"i": i}))
        deadline = time.monotonic() + 5
        while writer.written < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer.written == 10 and [json.loads(x)["i"] for x in _lines(tmp_path / "logs")] == list(range(10))
        assert (tmp_path / "logs" / "p.jsonl").stat().st_mode & 0o777 == 0o640
        writer.close()
    finally:
        os.umask(old)


def test_line_writer_counts_a_full_buffer_and_io_errors_and_writes_the_rest_on_close(tmp_path):
    writer = RotatingLineWriter(tmp_path / "p.jsonl", max_bytes=1 << 20, backup_count=1, capacity=3, interval=3600)
    assert [writer.append(str(i)) for i in range(5)] == [True, True, True, False, False]
    writer.close()  # the thread sleeps for an hour: close() itself writes what waits
    assert (writer.written, writer.dropped, writer.errors) == (3, 2, 0)
    assert (tmp_path / "p.jsonl").read_text() == "0\n1\n2\n"

    blocked = RotatingLineWriter(tmp_path / "a_file" / "p.jsonl", 1 << 20, 1, 10, interval=3600)
    (tmp_path / "a_file").write_text("not a folder")
    blocked.append("x")
    blocked.append("y")
    blocked.close()  # must not raise
    assert (blocked.written, blocked.errors) == (0, 2)


def test_line_writer_rotation_keeps_every_line_in_order(tmp_path):
    writer = RotatingLineWriter(tmp_path / "p.jsonl", max_bytes=200, backup_count=50, capacity=1000, interval=3600)
    for i in range(300):
        writer.append(f"{i:04d}")
        if i % 37 == 0:
            writer.flush()
    writer.close()
    backups = sorted(tmp_path.glob("p.jsonl.*"), key=lambda p: -int(p.suffix[1:]))  # .N is the oldest
    files = [*backups, tmp_path / "p.jsonl"]
    lines = [line for p in files for line in p.read_text().splitlines()]
    assert lines == [f"{i:04d}" for i in range(300)]
    assert all(p.stat().st_size < 200 for p in files) and writer.written == 300
