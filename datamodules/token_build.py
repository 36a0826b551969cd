"""Tokenize a corpus into shards (library side of `python -m datamodules.tokenize`): resumable, atomic."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from core.errors import UserError

from datamodules.token_shards import (EOT, INDEX, SETTINGS, TOKENIZER, ShardWriter, atomic_write_bytes,
                                      atomic_write_json, completed_shards, read_index, token_dtype, write_index)
from datamodules.token_sources import Record, SourceError, check_columns, fingerprint, iter_records, list_files

log = logging.getLogger(__name__)
DEFAULT_VOCAB = 8192
DEFAULT_SHARD_TOKENS = 1 << 24  # 32 MiB of uint16 per shard
BATCH_CHARS = 1 << 21  # characters per encode_batch call: enough work for the library's threads


class SettingsError(UserError, ValueError):
    """The output folder holds another tokenization (or something else): refused before any work."""


def load_tokenizer(path: str | Path) -> Any:
    """A `tokenizers` tokenizer from a folder with tokenizer.json (or the file itself); it needs <|endoftext|>."""
    from tokenizers import Tokenizer

    path = Path(path)
    file = path / TOKENIZER if path.is_dir() else path
    if not file.is_file():
        raise SourceError(f"tokenizer={path} has no {TOKENIZER}: pass a tokenizer folder or tokenizer=train")
    tokenizer = Tokenizer.from_file(str(file))
    if tokenizer.token_to_id(EOT) is None:
        raise SourceError(f"tokenizer={path} has no {EOT} token: it separates documents; add it or use tokenizer=train")
    return tokenizer


def train_tokenizer(texts: Iterator[str], vocab_size: int) -> Any:
    """A byte-level BPE (GPT-2 style: every byte is representable) with <|endoftext|> as id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def _settings(input_path: Path, files: list[Path], text_column: str, tokenizer: str, vocab_size: int | None,
              shard_tokens: int) -> dict[str, Any]:
    return {"input": str(input_path.resolve()), "source_fingerprint": fingerprint(files, input_path, text_column),
            "text_column": text_column,
            "tokenizer": tokenizer if tokenizer == "train" else str(Path(tokenizer).resolve()),
            "vocab_size": vocab_size, "shard_tokens": shard_tokens}


def _claim_output(out: Path, settings: dict[str, Any]) -> None:
    """A fresh folder gets settings.json; one with the same settings resumes; anything else is refused."""
    path = out / SETTINGS
    if path.exists():
        old = json.loads(path.read_text())
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if changed:
            diff = "; ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise SettingsError(f"output={out} holds a tokenization made with other settings ({diff}): "
                                "choose a new output= or delete the folder")
        return
    if out.exists() and any(out.iterdir()):
        raise SettingsError(f"output={out} is not empty and holds no tokenization ({SETTINGS}): choose an empty folder")
    atomic_write_json(path, settings)


def _texts(files: list[Path], root: Path, text_column: str) -> Iterator[str]:
    return (r.text for r in iter_records(files, root, text_column) if r.text is not None)


def _prepare_tokenizer(out: Path, files: list[Path], root: Path, text_column: str, tokenizer: str,
                       vocab_size: int) -> Any:
    """The tokenizer saved beside the shards: trained once (a resumed run reuses it) or copied."""
    saved = out / TOKENIZER
    if saved.exists():
        return load_tokenizer(saved)
    if tokenizer == "train":
        trained = train_tokenizer(_texts(files, root, text_column), vocab_size)
        atomic_write_bytes(saved, trained.to_str().encode())
        return load_tokenizer(saved)
    source = Path(tokenizer)
    atomic_write_bytes(saved, (source / TOKENIZER if source.is_dir() else source).read_bytes())
    return load_tokenizer(saved)


def _encode(tokenizer: Any, writer: ShardWriter, batch: list[tuple[int, Record]]) -> None:
    """One batched call into the library (its Rust threads do the work), then documents in record order."""
    good = [r.text for _, r in batch if r.text is not None]
    encoded = iter(tokenizer.encode_batch_fast(good, add_special_tokens=False)) if good else iter(())
    for number, record in batch:
        if record.text is None:
            writer.reject(record.source, record.reason or "unusable")
        else:
            writer.add(np.asarray(next(encoded).ids, dtype=np.uint32))
        writer.record_done(number + 1)


def summary_line(index: dict[str, Any], out: Path) -> str:
    """One line: documents, tokens, and the rejected records by reason (or that there were none)."""
    line = (f"tokenized {index['documents']} documents, {index['tokens']} tokens "
            f"into {len(index['shards'])} shard(s) at {out}")
    if not index["rejected"]:
        return line + "; rejected 0 records"
    rejects = out / index["rejects_file"]
    reasons = Counter(json.loads(x)["reason"].split(" (")[0] for x in rejects.read_text().splitlines())
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    return line + f"; rejected {index['rejected']} of {index['records']} records ({detail}): see {rejects}"


def tokenize_corpus(input: str | Path, output: str | Path, tokenizer: str = "train", vocab_size: int | None = None,
                    text_column: str = "text", shard_tokens: int = DEFAULT_SHARD_TOKENS,
                    batch_chars: int = BATCH_CHARS, files: list[Path] | None = None) -> dict[str, Any]:
    """Tokenize `input` into shards under `output`; resumes a killed run, refuses other settings; the index.

    `files`: these files of the folder `input` (in this order) instead of all of them (the bundled corpus).
    """
    root, out = Path(input), Path(output)
    if tokenizer == "train":
        vocab_size = DEFAULT_VOCAB if vocab_size is None else vocab_size
    files = list_files(root) if files is None else files
    check_columns(files, text_column)
    if tokenizer != "train":
        load_tokenizer(tokenizer)  # fails before any work when it is not usable
    settings = _settings(root, files, text_column, tokenizer, vocab_size, shard_tokens)
    _claim_output(out, settings)
    with _exclusive(out):
        if (out / INDEX).exists():
            return read_index(out)  # finished before with these settings: nothing to do
        return _tokenize(out, root, files, settings, tokenizer, vocab_size, text_column, shard_tokens, batch_chars)


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One writer per output folder: a second concurrent run is refused; a killed one's temp files are cleared."""
    with open(out / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SettingsError(f"another tokenize run is writing output={out}: wait for it to finish") from None
        for stale in out.glob(".*.tmp"):  # half-written files of a killed run (never renamed into place)
            stale.unlink()
        yield


def _tokenize(out: Path, root: Path, files: list[Path], settings: dict[str, Any], tokenizer: str,
              vocab_size: int | None, text_column: str, shard_tokens: int, batch_chars: int) -> dict[str, Any]:
    """Train or copy the tokenizer, skip the records of completed shards, encode the rest, write the index."""
    tok = _prepare_tokenizer(out, files, root, text_column, tokenizer, vocab_size or 0)
    dtype = token_dtype(tok.get_vocab_size())
    eot_id = tok.token_to_id(EOT)
    done = completed_shards(out)
    skip = done[-1]["records"][1] if done else 0
    writer = ShardWriter(out, dtype, eot_id, shard_tokens, len(done), skip)
    batch: list[tuple[int, Record]] = []
    chars, number = 0, -1
    for number, record in enumerate(iter_records(files, root, text_column)):
        if number < skip:
            continue  # in a shard a previous run completed
        batch.append((number, record))
        chars += len(record.text or "")
        if chars >= batch_chars:
            _encode(tok, writer, batch)
            batch, chars = [], 0
    _encode(tok, writer, batch)
    writer.flush(number + 1)
    meta = {"dtype": dtype.name, "vocab_size": tok.get_vocab_size(), "eot_id": eot_id,
            "tokenizer_sha256": hashlib.sha256((out / TOKENIZER).read_bytes()).hexdigest(),
            "source": {k: settings[k] for k in ("input", "source_fingerprint", "text_column")} | {"files": len(files)},
            "settings": settings}
    return write_index(out, completed_shards(out), meta)

