"""score.py as users run it: kill -9 then resume, 3-way sharding, planted bad records, clear config errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.scoring.inputs import InputError
from serving.scoring.model import ModelLoadError
from serving.scoring.runner import ScoreOptions, score
from serving.scoring.writer import PlanMismatch
from serving.scoring.writer import read_output, read_rejects
from tests.conftest import REPO, run_entry
from tests.serving.scoring.conftest import plant_bad_images, rows_by_id

FAST = ["torch_threads=1", "progress=false"]


def file_list_with_bad_records(digit_pngs, folder: Path) -> tuple[Path, list[str], dict[str, str]]:
    """A .txt file list: every digit PNG (absolute paths) plus planted bad ones (relative, one missing)."""
    planted = plant_bad_images(folder, digit_pngs.folder / digit_pngs.names[0])
    good = [str(digit_pngs.folder / n) for n in digit_pngs.names]
    entries = good[:100] + list(planted) + good[100:]
    listing = folder / "images.txt"
    listing.write_text("# digits to score\n" + "\n".join(entries) + "\n\n")
    return listing, good, planted


@pytest.mark.slow
def test_kill_9_then_rerun_scores_every_record_once(exported_digits, digit_pngs, tmp_path):
    listing, good, planted = file_list_with_bad_records(digit_pngs, tmp_path)
    out = tmp_path / "out"
    args = [f"model={exported_digits.export_dir}", f"input={listing}", f"output={out}", "chunk_size=10",
            "batch_size=5", "num_workers=1", *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "score.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the main process and its DataLoader worker, mid-run
    log = proc.communicate()[0].decode(errors="replace")
    parts = sorted(out.glob("part-*.parquet"))
    total_chunks = -(-(len(good) + len(planted)) // 10)
    assert 3 <= len(parts) < total_chunks, f"the kill did not land mid-run ({len(parts)} parts):\n{log}"
    assert not (out / "_SUCCESS.json").exists()
    # a killed writer can leave a hidden temp file: the rerun must delete it, never read it
    (out / ".part-00000-000099.parquet.abc.tmp").write_bytes(b"half a file")
    # a damaged part (it cannot happen with atomic renames, but a disk can): rescored, not trusted
    parts[-1].write_bytes(parts[-1].read_bytes()[:20])

    proc = run_entry("score.py", *args)
    summary = json.loads((out / "_SUCCESS.json").read_text())
    rows = read_output(out)
    by_id = rows_by_id(rows)  # ids unique
    assert sorted(by_id) == sorted(good)  # output rows == the good input records, none lost or doubled
    rejects = {r["id"]: r for r in read_rejects(out)}
    assert {i: r["code"] for i, r in rejects.items()} == planted  # nothing good in rejects
    assert all(r["reason"] for r in rejects.values())
    merged = [json.loads(line) for line in (out / "_rejects.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in merged) == sorted(planted)
    assert summary["scored"] == len(good) and summary["rejected"] == len(planted)
    assert summary["total"] == len(good) + len(planted) == summary["input_records"]
    assert summary["records_per_second"] > 0 and summary["model"]["name"] == exported_digits.name
    shard = json.loads((out / "_shards" / "shard-00000-of-00001.json").read_text())
    assert 0 < shard["chunks_resumed"] < shard["chunks"]  # the rerun reused completed chunks
    assert not list(out.glob(".*.tmp"))


def test_three_shards_cover_every_record_exactly_once(exported_digits, digit_pngs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "2")
    summaries = []
    for task in (2, 0, 1):  # tasks finish in any order; the last one writes _SUCCESS.json
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        summaries.append(score(ScoreOptions(model=str(exported_digits.export_dir), input=str(digit_pngs.folder),
                                            output=str(out), format="jsonl", chunk_size=32, num_workers=0,
                                            torch_threads=1, progress=False)))
    assert [s["shard_index"] for s in summaries] == [2, 0, 1] and all(s["num_shards"] == 3 for s in summaries)
    assert summaries[0]["success"] is None and summaries[1]["success"] is None  # not before every task is done
    assert all(s["scored"] > 0 for s in summaries)
    assert sum(s["task_records"] for s in summaries) == len(digit_pngs.names)
    ids = [r["id"] for r in read_output(out)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(digit_pngs.names)
    by_shard = {i: {r["id"] for r in read_output_shard(out, i)} for i in range(3)}
    assert not (by_shard[0] & by_shard[1] or by_shard[0] & by_shard[2] or by_shard[1] & by_shard[2])
    summary = json.loads((out / "_SUCCESS.json").read_text())
    assert summary == summaries[2]["success"]
    assert summary["num_shards"] == 3 and summary["scored"] == len(digit_pngs.names) and summary["rejected"] == 0


def read_output_shard(out: Path, shard: int) -> list[dict]:
    """Rows of one task's parts."""
    return [json.loads(line) for p in sorted(out.glob(f"part-{shard:05d}-*.jsonl")) for line in p.read_text().splitlines()]


def test_bad_settings_fail_with_the_fix(exported_digits, digit_pngs, tmp_path):
    proc = run_entry("score.py", f"model={exported_digits.export_dir}", f"input={digit_pngs.folder}",
                     f"output={tmp_path}", "format=csv", "num_shards=2", "shard_index=2", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "format='csv': use one of parquet, jsonl" in proc.stderr
    assert "shard_index=2 is outside 0..1" in proc.stderr
    with pytest.raises(ModelLoadError, match="does not exist.*export folder"):
        score(ScoreOptions(model=str(tmp_path / "nope"), input=str(digit_pngs.folder), output=str(tmp_path)))
    with pytest.raises(ModelLoadError, match="task=perplexity scores language models.*classification export"):
        score(ScoreOptions(model=str(exported_digits.export_dir), input=str(digit_pngs.folder), output=str(tmp_path),
                           task="perplexity"))
    with pytest.raises(InputError, match="has no column 'path'.*columns.path=NAME"):
        score(ScoreOptions(model=str(exported_digits.export_dir), input=str(REPO / "data/support_tickets/test.csv"),
                           output=str(tmp_path)))


def test_output_started_with_other_settings_is_refused(exported_digits, digit_pngs, tmp_path):
    common = dict(model=str(exported_digits.export_dir), input=str(digit_pngs.folder), output=str(tmp_path),
                  num_workers=0, torch_threads=1, progress=False)
    score(ScoreOptions(chunk_size=100, **common))
    with pytest.raises(PlanMismatch, match="chunk_size: was 100, now 50.*new output folder"):
        score(ScoreOptions(chunk_size=50, **common))
    again = score(ScoreOptions(chunk_size=100, **common))  # same settings: nothing left to do, same answer
    assert again["processed_this_run"] == 0 and again["success"]["scored"] == len(digit_pngs.names)
