"""Token shards on disk: flat uint16/uint32 files + one index; writes are atomic, reads never load a shard.

Layout of a tokenized folder:
  tokenizer.json          the tokenizer the ids come from
  settings.json           what produced the shards (a rerun with other settings is refused)
  shard_00000.bin         documents' token ids back to back, each document followed by <|endoftext|>
  shard_00000.json        that shard's record range, documents (offset, length) and rejects: written last,
                          so a shard is complete exactly when its .json exists
  documents.npy           int64 [N, 3]: shard, offset, length (tokens, end-of-text included) per document
  rejects.jsonl           every rejected record: {"source", "reason"}
  index.json              totals, shards, dtype, eot_id, tokenizer sha256, source fingerprint: written last
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write_bytes, atomic_write_with
from core.errors import UserError

FORMAT = "shipyard-tokens/1"
INDEX = "index.json"
SETTINGS = "settings.json"
TOKENIZER = "tokenizer.json"
DOCUMENTS = "documents.npy"
REJECTS = "rejects.jsonl"
EOT = "<|endoftext|>"


class TokenDataError(UserError, ValueError):
    """A tokenized folder that is missing, unfinished or damaged: exit 2 with what to run."""


def atomic_write_json(path: Path, data: Any) -> None:
    """Compact, sorted JSON (shard sidecars and the index can list many documents)."""
    atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (vocab ≤ 65535), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.uint32)


def shard_name(number: int, suffix: str) -> str:
    return f"shard_{number:05d}.{suffix}"


class ShardWriter:
    """Collects encoded documents; every `shard_tokens` tokens it writes one complete shard (.bin then .json)."""

    def __init__(self, out: Path, dtype: np.dtype, eot_id: int, shard_tokens: int, number: int, record: int) -> None:
        self.out, self.dtype, self.eot = out, dtype, np.array([eot_id], dtype=dtype)
        self.shard_tokens = shard_tokens
        self.number = number  # the shard being filled
        self.start = record  # its first record
        self._reset()

    def _reset(self) -> None:
        self.parts: list[np.ndarray] = []
        self.docs: list[list[int]] = []
        self.rejects: list[dict[str, str]] = []
        self.tokens = 0

    def add(self, ids: np.ndarray) -> None:
        """One document's ids (end-of-text appended here)."""
        self.parts += [ids.astype(self.dtype, copy=False), self.eot]
        self.docs.append([self.tokens, len(ids) + 1])
        self.tokens += len(ids) + 1

    def reject(self, source: str, reason: str) -> None:
        self.rejects.append({"source": source, "reason": reason})

    def record_done(self, record_end: int) -> None:
        """After each record: close the shard once it holds enough tokens (documents never span shards)."""
        if self.tokens >= self.shard_tokens:
            self.flush(record_end)

    def flush(self, record_end: int) -> None:
        """Write the shard being filled (also the last, partial one; nothing when it holds no record)."""
        if record_end == self.start:
            return
        digest = hashlib.sha256()

        def write(f: Any) -> None:  # streamed part by part: no second copy of the shard in memory
            for part in self.parts:
                view = memoryview(np.ascontiguousarray(part)).cast("B")
                digest.update(view)
                f.write(view)

        atomic_write_with(self.out / shard_name(self.number, "bin"), write)
        atomic_write_json(self.out / shard_name(self.number, "json"), {
            "records": [self.start, record_end], "tokens": self.tokens, "documents": self.docs,
            "rejects": self.rejects, "sha256": digest.hexdigest()})
        self.number += 1
        self.start = record_end
        self._reset()


def completed_shards(out: Path) -> list[dict[str, Any]]:
    """The shards a previous (maybe killed) run finished, in order: contiguous from shard 0."""
    done = []
    while (out / shard_name(len(done), "json")).exists() and (out / shard_name(len(done), "bin")).exists():
        done.append(json.loads((out / shard_name(len(done), "json")).read_text()))
    return done


def write_index(out: Path, shards: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """documents.npy + rejects.jsonl + index.json (last: its presence marks a finished tokenization)."""
    docs = [(number, offset, length) for number, s in enumerate(shards) for offset, length in s["documents"]]
    table = np.asarray(docs, dtype=np.int64).reshape(-1, 3)
    buffer = io.BytesIO()
    np.save(buffer, table)
    atomic_write_bytes(out / DOCUMENTS, buffer.getvalue())
    rejects = [r for s in shards for r in s["rejects"]]
    atomic_write_bytes(out / REJECTS, "".join(json.dumps(r) + "\n" for r in rejects).encode())
    index = {**meta, "format": FORMAT,
             "shards": [{"file": shard_name(n, "bin"), "tokens": s["tokens"], "documents": len(s["documents"]),
                         "sha256": s["sha256"]} for n, s in enumerate(shards)],
             "documents": len(docs), "tokens": int(table[:, 2].sum()) if len(docs) else 0,
             "records": shards[-1]["records"][1] if shards else 0, "rejected": len(rejects),
             "documents_file": DOCUMENTS, "rejects_file": REJECTS, "tokenizer_file": TOKENIZER}
    atomic_write_json(out / INDEX, index)
    return index


def read_index(data_dir: Path) -> dict[str, Any]:
    """The finished index of a tokenized folder, with an error that says how to make one."""
    path = Path(data_dir) / INDEX
    if not path.exists():
        raise TokenDataError(f"{data_dir} has no {INDEX}: not a finished tokenization; run "
                                f"`python -m datamodules.tokenize input=PATH output={data_dir}` (it resumes)")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise TokenDataError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}; tokenize again")
    return index


class TokenShards:
    """Reads token ranges with pread: nothing is mapped or cached in the process, so memory stays flat.

    (np.memmap would do too, but every page an epoch touches then counts in the process's resident set.)
    File descriptors are opened lazily per process: DataLoader workers fork and get their own.
    """

    def __init__(self, data_dir: Path, index: dict[str, Any]) -> None:
        self.paths = [Path(data_dir) / s["file"] for s in index["shards"]]
        self.dtype = np.dtype(index["dtype"])
        self._fds: dict[int, int] = {}
        self._pid = -1

    def read(self, shard: int, offset: int, length: int) -> np.ndarray:
        """`length` token ids of `shard` from token `offset`."""
        if self._pid != os.getpid():
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(self.paths[shard], os.O_RDONLY)
        size = self.dtype.itemsize
        data = os.pread(fd, length * size, offset * size)
        if len(data) != length * size:
            raise TokenDataError(f"{self.paths[shard]} is shorter than its index says: tokenize again")
        return np.frombuffer(data, dtype=self.dtype)

    def memmap(self, shard: int) -> np.memmap:
        """A read-only memory map of one shard (for passes that want views, e.g. counting n-grams)."""
        return np.memmap(self.paths[shard], dtype=self.dtype, mode="r")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fds": {}, "_pid": -1}  # descriptors do not travel to spawned workers

    def close(self) -> None:
        if self._pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = {}
