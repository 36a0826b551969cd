"""Scoring's pieces without a model: input readers, sharding, chunk completeness, progress."""
from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from serving.scoring.inputs import Columns, InputError, read_records
from serving.scoring.runner import Progress
from serving.scoring.config import ShardingError, plan_batches, plan_chunks, resolve_shard, select_shard, shard_of
from serving.scoring.writer import chunk_status, score_rows, write_chunk


def test_image_folder_file_list_and_tables(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name in ("b.png", "a.png", "sub/c.jpg", ".hidden.png"):
        (tmp_path / "imgs" / name).write_bytes(b"x")
    folder = read_records(tmp_path / "imgs", "image")
    assert folder.ids == ["a.png", "b.png", "sub/c.jpg"] and folder.kind == "path"  # sorted, hidden skipped

    listing = tmp_path / "list.txt"
    listing.write_text("# comment\nimgs/a.png\n\n/abs/x.png\n")
    files = read_records(listing, "image")
    assert files.ids == ["imgs/a.png", "/abs/x.png"]
    assert files.values == [str(tmp_path / "imgs/a.png"), "/abs/x.png"]  # relative to the list's folder

    texts = pd.DataFrame({"key": ["k1", "k2", "k3"], "body": ["hello", None, "world"]})
    texts.to_csv(tmp_path / "t.csv", index=False)
    table = read_records(tmp_path / "t.csv", "text", Columns(id="key", text="body"))
    assert table.ids == ["k1", "k2", "k3"] and table.values == ["hello", None, "world"]  # None → rejected later
    no_ids = read_records(tmp_path / "t.csv", "text", Columns(text="body"))
    assert no_ids.ids == ["0", "1", "2"]  # row numbers

    pd.DataFrame({"path": ["imgs/a.png", "imgs/b.png"]}).to_parquet(tmp_path / "p.parquet")
    paths = read_records(tmp_path / "p.parquet", "image")
    assert paths.ids == ["imgs/a.png", "imgs/b.png"] and paths.values[0] == str(tmp_path / "imgs/a.png")
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "hi", "id": 7}) + "\n" + json.dumps({"text": "yo", "id": 8}))
    assert read_records(tmp_path / "t.jsonl", "text", Columns(id="id")).ids == ["7", "8"]


def test_input_problems_are_named(tmp_path):
    pd.DataFrame({"id": ["a", "a"], "text": ["x", "y"]}).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(InputError, match="duplicate record ids.*'a'"):
        read_records(tmp_path / "dup.csv", "text", Columns(id="id"))
    with pytest.raises(InputError, match="no column 'body'.*columns.text=NAME"):
        read_records(tmp_path / "dup.csv", "text", Columns(text="body"))
    with pytest.raises(InputError, match="does not exist"):
        read_records(tmp_path / "nope", "image")
    (tmp_path / "l.txt").write_text("a.png\n")
    with pytest.raises(InputError, match="lists files, but the model is a text model"):
        read_records(tmp_path / "l.txt", "text")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty folder"):
        read_records(tmp_path / "empty", "image")
    (tmp_path / "x.xlsx").write_bytes(b"")
    with pytest.raises(InputError, match="unsupported file type"):
        read_records(tmp_path / "x.xlsx", "text")


def test_three_shards_cover_every_record_exactly_once():
    ids = [f"img/{i:05d}.png" for i in range(3000)]
    shards = [select_shard(ids, 3, k) for k in range(3)]
    flat = sorted(p for s in shards for p in s)
    assert flat == list(range(len(ids)))  # every record exactly once
    assert all(800 < len(s) < 1200 for s in shards)  # and roughly balanced
    # stable across processes, machines and Python's hash seed (blake2b of the id): pinned values
    assert [shard_of(i, 7) for i in ("a", "b", "img/00001.png")] == [2, 5, 2] and shard_of("a", 1000) == 343
    # a shuffled input assigns every id to the same shard
    reordered = list(reversed(ids))
    assert {reordered[p] for p in select_shard(reordered, 3, 1)} == {ids[p] for p in shards[1]}


def test_shard_defaults_come_from_the_slurm_array():
    env = {"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "5",
           "SLURM_ARRAY_TASK_MAX": "8"}
    assert resolve_shard(None, None, env) == (4, 1)
    assert resolve_shard(2, 0, env) == (2, 0)  # explicit values win
    assert resolve_shard(None, None, {}) == (1, 0)
    with pytest.raises(ShardingError, match="not contiguous"):
        resolve_shard(None, None, {**env, "SLURM_ARRAY_TASK_MAX": "20"})
    with pytest.raises(ShardingError, match="outside 0..2"):
        resolve_shard(3, 3, {})


def test_chunks_batches_and_completeness(tmp_path):
    chunks = plan_chunks(list(range(10)), 4, shard_index=2)
    assert [c.positions for c in chunks] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert chunks[1].name == "part-00002-000001"
    assert plan_batches(chunks, 3) == [(0, [0, 1, 2]), (0, [3]), (1, [4, 5, 6]), (1, [7]), (2, [8, 9])]
    ids = ["a", "b", "c", "d"]
    pred = {"label": "x", "probability": 0.9, "top_k": [{"label": "x", "probability": 0.9}]}
    for fmt in ("parquet", "jsonl"):
        out = tmp_path / fmt
        assert chunk_status(out, chunks[0], ids, fmt) is None  # nothing written yet
        write_chunk(out, chunks[0], score_rows(ids[:3], [pred] * 3, "m", "1"), [{"id": "d", "reason": "r"}], fmt)
        assert chunk_status(out, chunks[0], ids, fmt) == (3, 1)
        assert chunk_status(out, chunks[0], ["a", "b", "c", "e"], fmt) is None  # other records: not this chunk's
        part = out / f"{chunks[0].name}.{fmt}"
        part.write_bytes(part.read_bytes()[:-5])  # damaged: rescored, not trusted
        assert chunk_status(out, chunks[0], ids, fmt) is None


def test_progress_reports_records_per_second(caplog):
    with caplog.at_level(logging.INFO, logger="serving.scoring.runner"):
        with Progress(10, enabled=True) as progress:
            progress.advance(6, rejected=1)
            progress.advance(4)
    assert "10/10 records (1 rejected)" in caplog.text and "records/s" in caplog.text


def test_every_input_kind_has_its_steps_and_an_unknown_kind_is_named():
    """Preparing, collating, answering and warming up per input kind come from one table (serving/scoring/kinds.py)."""
    from types import SimpleNamespace

    from serving.scoring.config import ModelLoadError
    from serving.scoring.kinds import INPUT_KINDS, input_kind

    assert set(INPUT_KINDS) == {"image", "text", "tabular", "prompt", "document"}  # prompt/document: LM jobs
    with pytest.raises(ModelLoadError, match=r"reads image, text, tabular, prompt, document models.*kind='audio'"):
        input_kind(SimpleNamespace(spec=SimpleNamespace(kind="audio")))
