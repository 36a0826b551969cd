"""python -m datamodules.tokenize: every format, planted bad records, clear errors, kill + resume, dtype choice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datamodules.token_build import tokenize_corpus
from datamodules.token_shards import token_dtype

REPO = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "datamodules.tokenize", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def code_folder(root: Path, count: int) -> Path:
    """`count` real stdlib modules copied into a folder (real text nobody here wrote)."""
    root.mkdir(parents=True)
    for path in sorted(STDLIB.glob("*.py"))[:count]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


def test_every_format_with_planted_bad_records(tmp_path: Path) -> None:
    src = code_folder(tmp_path / "in", 4)
    (src / "bad_utf8.txt").write_bytes(b"caf\xe9 au lait")
    (src / "empty.txt").write_text("  \n")
    (src / "blob.dat").write_bytes(b"MZ\x00\x01\x02binary")
    (src / "rows.jsonl").write_bytes(b'{"body": "good json row"}\n{"body": ""}\n{"other": 1}\n{"body": "a\\u0000b"}\n')
    (src / "rows.csv").write_bytes(b"id,body\n1,good csv row\n2,\n3,bad \xff byte\n")
    pd.DataFrame({"body": ["good parquet row", "", "another good one"]}).to_parquet(src / "rows.parquet")
    out = tmp_path / "out"
    proc = cli(f"input={src}", f"output={out}", "vocab_size=400", "text_column=body")
    assert proc.returncode == 0, proc.stderr
    lines = (out / "rejects.jsonl").read_text().splitlines()
    rejects = {(r["source"], r["reason"].split(" (")[0]) for r in map(json.loads, lines)}
    assert rejects == {("bad_utf8.txt", "non-UTF-8"), ("empty.txt", "empty"), ("blob.dat", "binary"),
                       ("rows.jsonl:2", "empty"), ("rows.jsonl:3", "no field 'body'"), ("rows.jsonl:4", "binary"),
                       ("rows.csv:3", "empty"), ("rows.csv:4", "non-UTF-8"), ("rows.parquet:row 2", "empty")}
    index = json.loads((out / "index.json").read_text())
    assert index["records"] == 4 + 3 + 4 + 3 + 3 and index["rejected"] == 9
    assert index["documents"] == index["records"] - index["rejected"]  # nothing dropped silently
    assert "rejected 9 of 17 records" in proc.stdout and "rejects.jsonl" in proc.stdout
    docs = np.load(out / "documents.npy")
    tokens = np.fromfile(out / "shard_00000.bin", dtype=index["dtype"])
    assert docs[:, 2].sum() == len(tokens) == index["tokens"]
    ends = docs[:, 1] + docs[:, 2] - 1
    assert (tokens[ends] == index["eot_id"]).all()  # every document ends in <|endoftext|>
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert tok.get_vocab_size() == 400 and tok.token_to_id("<|endoftext|>") == index["eot_id"]
    texts = [tok.decode(tokens[o:o + n - 1].tolist()) for _, o, n in docs]
    assert "good csv row" in texts and "good parquet row" in texts and "good json row" in texts


@pytest.mark.parametrize("args, message", [
    (["input=/no/such/folder", "output=OUT"], "does not exist"),
    (["input=IN", "output=OUT", "vocab_siz=300"], "unknown key 'vocab_siz'"),
    (["input=IN", "output=OUT", "vocab_size=ten"], "vocab_size='ten' is not an integer"),
    (["input=IN", "output=OUT", "vocab_size=100"], "between 257 and"),
    (["output=OUT"], "input= is required"),
    (["input=IN", "output=OUT", "tokenizer=/no/tok"], "has no tokenizer.json"),
    (["input=IN", "output=OUT", "text_column=nope"], "has no column 'nope'"),
    (["input=IN", "output=OUT", "tokenizer=IN", "vocab_size=300"], "only applies to tokenizer=train"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "t.csv").write_text("text\nhello\n")
    out = tmp_path / "out"
    proc = cli(*(a.replace("IN", str(src)).replace("OUT", str(out)) for a in args))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_other_settings_on_the_same_output_are_refused(tmp_path: Path) -> None:
    src = code_folder(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert cli(f"input={src}", f"output={out}", "vocab_size=300").returncode == 0
    before = sorted(p.name for p in out.iterdir())
    proc = cli(f"input={src}", f"output={out}", "vocab_size=320")
    assert proc.returncode == 2 and "vocab_size: 300 -> 320" in proc.stderr and "Traceback" not in proc.stderr
    (src / "new.txt").write_text("more text")
    proc = cli(f"input={src}", f"output={out}", "vocab_size=300")
    assert proc.returncode == 2 and "source_fingerprint" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == before


def test_killed_run_resumes_to_identical_shards(tmp_path: Path) -> None:
    src = code_folder(tmp_path / "in", 40)
    args = [f"input={src}", "vocab_size=300", "shard_tokens=20000", "batch_chars=20000"]
    whole = tmp_path / "whole"
    assert cli(*args, f"output={whole}").returncode == 0
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "datamodules.tokenize", *args, f"output={killed}"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (killed / "shard_00000.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "shard_00000.json").exists() and not (killed / "index.json").exists(), "killed too late"
    kept = {p.name: p.stat().st_mtime_ns for p in killed.glob("shard_*.json")}
    proc = cli(*args, f"output={killed}")
    assert proc.returncode == 0, proc.stderr
    assert all((killed / name).stat().st_mtime_ns == mtime for name, mtime in kept.items())  # kept, not redone
    names = sorted(p.name for p in whole.iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in killed.iterdir() if not p.name.startswith("."))
    assert len([n for n in names if n.endswith(".bin")]) > 3
    for name in names:
        assert (whole / name).read_bytes() == (killed / name).read_bytes(), name
    again = cli(*args, f"output={killed}")  # finished: a rerun is a no-op with the same summary
    assert again.returncode == 0 and again.stdout.split(" at ")[0] == proc.stdout.split(" at ")[0]


def test_dtype_follows_the_vocabulary_size(tmp_path: Path) -> None:
    assert token_dtype(65535) == np.uint16 and token_dtype(65536) == np.uint32
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<|endoftext|>": 0, **{f"w{i}": i + 1 for i in range(70_000)}}
    big = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    (tmp_path / "tok").mkdir()
    big.save(str(tmp_path / "tok" / "tokenizer.json"))
    (tmp_path / "doc.txt").write_text("w1 w69999 w5")
    index = tokenize_corpus(tmp_path / "doc.txt", tmp_path / "big", tokenizer=str(tmp_path / "tok"))
    assert index["dtype"] == "uint32" and index["vocab_size"] == 70_001
    assert np.fromfile(tmp_path / "big" / "shard_00000.bin", dtype=np.uint32).tolist() == [2, 70000, 6, 0]
    small = tokenize_corpus(tmp_path / "doc.txt", tmp_path / "small", vocab_size=300)
    assert small["dtype"] == "uint16"
