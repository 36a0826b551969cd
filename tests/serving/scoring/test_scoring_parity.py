"""Batch scoring answers exactly what the TorchServe handler answers (in-process, TorchServe's real Context)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ts.context import Context, RequestProcessor

from runtime.handlers.image_classifier import ImageClassifierHandler
from runtime.handlers.text_classifier import TextClassifierHandler
from serving.scoring.inputs import Columns
from serving.scoring.runner import ScoreOptions, score
from serving.scoring.writer import read_output, read_rejects
from tests.serving.scoring.conftest import rows_by_id

BATCH = 8  # handler batches = scoring batches (chunk_size a multiple of it), so the very same forwards run


def handler_answers(handler_cls: type, model_dir: Path, name: str, bodies: list[bytes]) -> list[dict]:
    """Answers of the handler run in-process, BATCH requests per `handle` call, as TorchServe would."""
    handler = handler_cls()
    ctx = Context(name, str(model_dir), {"model": {"modelName": name}}, BATCH, None, "0.12.0")
    handler.initialize(ctx)
    answers = []
    for start in range(0, len(bodies), BATCH):
        requests = [{"body": b} for b in bodies[start:start + BATCH]]
        ctx.request_processor = [RequestProcessor({}) for _ in requests]
        out = handler.handle(requests, ctx)
        assert all(p.get_response_status_code() == 200 for p in ctx.request_processor)
        answers.extend(json.loads(a) for a in out)
    return answers


def assert_same(row: dict, answer: dict) -> None:
    """A scoring row equals a handler answer: label, probability and the whole top-k list."""
    assert row["label"] == answer["label"]
    assert row["probability"] == answer["probability"]
    assert row["top_k_labels"] == [t["label"] for t in answer["top_k"]]
    assert row["top_k_probabilities"] == [t["probability"] for t in answer["top_k"]]


def test_image_scores_equal_handler(exported_digits, digit_pngs, tmp_path):
    out = tmp_path / "out"
    summary = score(ScoreOptions(model=str(exported_digits.export_dir), input=str(digit_pngs.folder),
                                 output=str(out), batch_size=BATCH, chunk_size=4 * BATCH, num_workers=1,
                                 torch_threads=1, progress=False))
    assert summary["success"]["scored"] == len(digit_pngs.names) and summary["success"]["rejected"] == 0
    rows = rows_by_id(read_output(out))
    bodies = [(digit_pngs.folder / n).read_bytes() for n in digit_pngs.names]
    answers = handler_answers(ImageClassifierHandler, exported_digits.export_dir, exported_digits.name, bodies)
    for name, answer in zip(digit_pngs.names, answers):
        assert_same(rows[name], answer)
    assert {r["model_name"] for r in rows.values()} == {exported_digits.name}
    assert {r["model_version"] for r in rows.values()} == {exported_digits.version}


def test_text_scores_equal_handler(exported_text, ticket_table, tmp_path):
    table, planted = ticket_table
    out = tmp_path / "out"
    score(ScoreOptions(model=str(exported_text.export_dir), input=str(table), output=str(out), format="jsonl",
                       columns=Columns(id="ticket", text="body"), batch_size=BATCH, chunk_size=2 * BATCH,
                       num_workers=0, torch_threads=1, progress=False))
    rows = rows_by_id(read_output(out))
    assert {r["id"]: r["code"] for r in read_rejects(out)} == planted
    records = [json.loads(line) for line in table.read_text().splitlines()]
    good = [r for r in records if r["ticket"] not in planted]
    assert sorted(rows) == sorted(r["ticket"] for r in good)
    # scoring's batches are BATCH consecutive records of a chunk, minus the rejected ones: give the handler
    # exactly those groups, so both run the very same forward passes
    texts = {r["ticket"]: r["body"] for r in records}
    ids = [r["ticket"] for r in records]
    chunk = 2 * BATCH
    for batch in (ids[c:c + chunk][b:b + BATCH] for c in range(0, len(ids), chunk) for b in (0, BATCH)):
        batch = [i for i in batch if i not in planted]
        if batch:
            answers = handler_answers(TextClassifierHandler, exported_text.export_dir, exported_text.name,
                                      [texts[i].encode() for i in batch])
            for record_id, answer in zip(batch, answers):
                assert_same(rows[record_id], answer)


def test_mar_and_pt2_inputs_score_like_the_export_folder(exported_digits, digit_pngs, tmp_path):
    """A .mar is read like the folder TorchServe unpacks; a model.pt2-only folder scores the same labels."""
    common = dict(input=str(digit_pngs.folder), batch_size=BATCH, chunk_size=64, num_workers=0, torch_threads=1,
                  progress=False)
    score(ScoreOptions(model=str(exported_digits.export_dir), output=str(tmp_path / "dir"), **common))
    summary = score(ScoreOptions(model=str(exported_digits.mar), output=str(tmp_path / "mar"), **common))
    assert summary["success"]["model"]["name"] == exported_digits.name
    assert summary["success"]["model"]["metadata"]["version"] == exported_digits.version
    from_dir, from_mar = read_output(tmp_path / "dir"), read_output(tmp_path / "mar")
    assert from_dir == from_mar and len(from_dir) == len(digit_pngs.names)

    pt2_only = tmp_path / "pt2_only"
    shutil.copytree(exported_digits.export_dir, pt2_only, ignore=shutil.ignore_patterns("model.pt", "archives"))
    if not (pt2_only / "model.pt2").exists():
        pytest.fail(f"export wrote no model.pt2 for digits_cnn: {exported_digits.export_json.get('targets')}")
    score(ScoreOptions(model=str(pt2_only), output=str(tmp_path / "pt2"), **common))
    from_pt2 = rows_by_id(read_output(tmp_path / "pt2"))
    for row in from_dir:
        assert from_pt2[row["id"]]["label"] == row["label"]
        assert abs(from_pt2[row["id"]]["probability"] - row["probability"]) < 1e-4
