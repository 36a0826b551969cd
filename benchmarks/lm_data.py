"""LM data: tokenize MB/s against the tokenizers library's own encode_batch, and the datamodule's flat memory.

tokenize: `tokenize_corpus` (what `python -m datamodules.tokenize` runs: fingerprint, reading, checks,
batched encoding, shards, index) on the bundled corpus's files with its trained tokenizer, against reading
the same files and one `Tokenizer.encode_batch` over them. ratio = ours MB/s ÷ library MB/s (target ≥ 0.8).

memory: peak resident memory (ru_maxrss) of a fresh process that sets the tokens datamodule up and iterates
one train epoch, on a corpus 10× the bundled one against the bundled one (target ≤ 1.1×: the shards are
read window by window, never loaded). The process's own footprint (torch, Lightning) dominates both, so
each side also reports `epoch_growth_mb`: what iterating the epoch added to the peak after setup.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, interleaved

MEMORY_SCRIPT = """
import json, resource, sys, time
from datamodules.tokens import TokensDataModule
dm = TokensDataModule(data_dir=sys.argv[1], seq_len=int(sys.argv[2]), batch_size=16)
dm.setup("fit")
after_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0, batches = time.perf_counter(), 0
for batch in dm.train_dataloader():
    batches += 1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_rss_mb": peak, "epoch_growth_mb": peak - after_setup, "batches": batches,
                  "tokens": dm.datasets["train"].tokens, "seconds": time.perf_counter() - t0}))
"""


def corpus_files(count: int | None) -> tuple[Path, list[Path]]:
    """The bundled corpus's files (the first `count` of them for a quick run)."""
    from datamodules.corpora import stdlib_files

    root, files = stdlib_files()
    return root, files[:count] if count else files


def bundled_tokenizer() -> Path:
    """A BPE trained on the bundled corpus (the datamodule's own, from the cache or made here)."""
    from datamodules.corpora import corpus_dir

    return corpus_dir("stdlib", 8192) / "tokenizer.json"


def tokenize_throughput(workdir: Path, files: list[Path], root: Path, tokenizer: Path, repeats: int) -> dict[str, Any]:
    """MB/s of tokenize_corpus vs read + encode_batch of the same files, interleaved repeats after a warm-up."""
    from tokenizers import Tokenizer

    from datamodules.token_build import tokenize_corpus

    megabytes = sum(p.stat().st_size for p in files) / 1e6
    library = Tokenizer.from_file(str(tokenizer))
    runs = iter(range(10**6))

    def ours() -> float:
        out = workdir / f"tok_{next(runs)}"
        t0 = time.perf_counter()
        tokenize_corpus(root, out, tokenizer=str(tokenizer), files=files)
        seconds = time.perf_counter() - t0
        shutil.rmtree(out)
        return megabytes / seconds

    def plain() -> float:
        t0 = time.perf_counter()
        texts = [p.read_text(encoding="utf-8") for p in files]
        library.encode_batch(texts, add_special_tokens=False)
        return megabytes / (time.perf_counter() - t0)

    ours(), plain()  # warm-up: page cache, thread pool
    result = interleaved({"ours": ours, "plain": plain}, repeats)
    return {"megabytes": round(megabytes, 2), "files": len(files), "ours_mb_per_s": result["ours"]["median"],
            "encode_batch_mb_per_s": result["plain"]["median"],
            "ratio": result["ours"]["median"] / result["plain"]["median"], "values": result}


def scaled_copy(small: Path, large: Path, copies: int) -> Path:
    """A tokenized folder holding every document of `small` `copies` times (a corpus `copies`× the size).

    Built from the small folder's ids (same shard size, index format and writer) rather than by
    tokenizing 10× the text again: this figure is about the datamodule, not the tokenizer.
    """
    import numpy as np

    from datamodules.token_shards import TOKENIZER, ShardWriter, TokenShards, read_index, write_index

    index = read_index(small)
    docs, shards = np.load(small / index["documents_file"]), TokenShards(small, index)
    large.mkdir(parents=True)
    shutil.copyfile(small / TOKENIZER, large / TOKENIZER)
    writer = ShardWriter(large, np.dtype(index["dtype"]), index["eot_id"], index["settings"]["shard_tokens"], 0, 0)
    for copy in range(copies):
        for number, (shard, offset, length) in enumerate(docs):
            writer.add(shards.read(int(shard), int(offset), int(length) - 1))  # the writer appends end-of-text
            writer.record_done(copy * len(docs) + number + 1)
    writer.flush(copies * len(docs))
    meta = {k: index[k] for k in ("dtype", "vocab_size", "eot_id", "tokenizer_sha256", "source", "settings")}
    write_index(large, [json.loads(p.read_text()) for p in sorted(large.glob("shard_*.json"))], meta)
    return large


def peak_rss(data_dir: Path, seq_len: int = 256) -> dict[str, Any]:
    """One fresh process: datamodule setup + one train epoch; its ru_maxrss and what it iterated."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(data_dir), str(seq_len)], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"the memory probe failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def datamodule_memory(workdir: Path, root: Path, files: list[Path], tokenizer: Path, scale: int = 10) -> dict[str, Any]:
    """Peak RSS iterating an epoch of a scale× corpus ÷ the same for the 1× corpus."""
    from datamodules.token_build import tokenize_corpus

    small, large = workdir / "mem_small", workdir / "mem_large"
    tokenize_corpus(root, small, tokenizer=str(tokenizer), files=files)
    scaled_copy(small, large, scale)
    one, many = peak_rss(small), peak_rss(large)
    return {"scale": scale, "small": one, "large": many, "ratio": many["peak_rss_mb"] / one["peak_rss_mb"],
            "small_shard_mb": round(sum(p.stat().st_size for p in small.glob("shard_*.bin")) / 1e6, 1),
            "large_shard_mb": round(sum(p.stat().st_size for p in large.glob("shard_*.bin")) / 1e6, 1)}


def bench(repeats: int = 3, files: int | None = None, workdir: Path | None = None) -> dict[str, Any]:
    """Both figures; `files` limits the corpus (quick runs)."""
    with tempfile.TemporaryDirectory(prefix="lm_data_", dir=workdir) as tmp:
        work = Path(tmp)
        root, selected = corpus_files(files)
        tokenizer = bundled_tokenizer()
        return {"tokenize": tokenize_throughput(work, selected, root, tokenizer, repeats),
                "memory": datamodule_memory(work, root, selected, tokenizer)}
