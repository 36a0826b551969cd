"""In-process predictions from an export folder with the handlers' own functions (what the server must match)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from runtime import classifier_io as io
from runtime import model_loading


def predict_in_process(export_dir: Path, bodies: Sequence[bytes], kind: str) -> list[dict[str, Any]]:
    """Decode, batch and run `bodies` like the handler does, without TorchServe."""
    spec = model_loading.load_spec(export_dir)
    model = model_loading.load_model(export_dir)
    if kind == "image":
        decoded = [io.decode_image_request(body, spec) for body in bodies]
        inputs = io.collate_images([d.value for d in decoded])
    else:
        decoded = [io.decode_text_request(body, spec) for body in bodies]
        inputs = io.collate_texts([d.value for d in decoded], io.pp.load_tokenizer(spec.tokenizer_dir), spec)
    return io.format_predictions(io.predict_batch(model, inputs), spec, [d.top_k for d in decoded])


def assert_same_prediction(served: dict[str, Any], expected: dict[str, Any], tol: float = 1e-5) -> None:
    """Same label and top-k labels; probabilities equal within tol."""
    assert served["label"] == expected["label"], (served, expected)
    assert [t["label"] for t in served["top_k"]] == [t["label"] for t in expected["top_k"]]
    for got, want in zip(served["top_k"], expected["top_k"]):
        assert abs(got["probability"] - want["probability"]) <= tol, (served, expected)


def text_bodies(csv_path: Path, n: int) -> list[bytes]:
    """The first n texts of a support-tickets CSV as JSON bodies."""
    import csv

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    return [json.dumps({"text": row["text"]}).encode() for row in rows]
