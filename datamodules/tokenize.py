"""python -m datamodules.tokenize input=PATH output=DIR [tokenizer=train|PATH] [vocab_size=N] [text_column=NAME]

Text files, folders, JSONL, CSV or Parquet → token shards + index.json under DIR (datamodules/token_shards.py
describes the layout), for `datamodule=tokens datamodule.data_dir=DIR`. tokenizer=train (the default) trains
a byte-level BPE of vocab_size ids (default 8192) on the input and saves it as DIR/tokenizer.json;
tokenizer=PATH uses the tokenizer.json of a folder. Rejected records (non-UTF-8, empty, binary) are listed
in DIR/rejects.jsonl and summed up in the last line. A killed run resumes where its last complete shard
ended when run again with the same arguments; other arguments on the same DIR are refused.
Tuning keys: shard_tokens=N (tokens per shard file, default 2^24), batch_chars=N (characters per
batched encode call, default 2^21; neither changes the ids, shard_tokens changes the shard files).
Exit 2 on bad arguments, before any work.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from core.errors import UserError
from datamodules.token_build import BATCH_CHARS, DEFAULT_SHARD_TOKENS, summary_line, tokenize_corpus

KEYS = ("input", "output", "tokenizer", "vocab_size", "text_column", "shard_tokens", "batch_chars")
USAGE = ("usage: python -m datamodules.tokenize input=PATH output=DIR [tokenizer=train|PATH] [vocab_size=N] "
         "[text_column=NAME]")


class UsageError(UserError, ValueError):
    """A bad command line: exit 2 with this message."""


def _positive_int(key: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        example = 8192 if key == "vocab_size" else max(low, 1 << 20)
        raise UsageError(f"{key}={value!r} is not an integer; pass e.g. {key}={example}") from None
    if not low <= number <= high:
        raise UsageError(f"{key}={number} is out of range: it must be between {low} and {high}")
    return number


def parse_args(argv: list[str]) -> dict[str, Any]:
    """key=value arguments → tokenize_corpus keyword arguments (every check that needs no file)."""
    args: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {arg!r} is not key=value\n{USAGE}")
        if key not in KEYS:
            raise UsageError(f"unknown key {key!r}; the keys are {', '.join(KEYS)}\n{USAGE}")
        args[key] = value
    for key in ("input", "output"):
        if not args.get(key):
            raise UsageError(f"{key}= is required\n{USAGE}")
    tokenizer = args.get("tokenizer", "train") or "train"
    out: dict[str, Any] = {"input": args["input"], "output": args["output"], "tokenizer": tokenizer,
                           "text_column": args.get("text_column", "text") or "text"}
    for key, default in (("shard_tokens", DEFAULT_SHARD_TOKENS), ("batch_chars", BATCH_CHARS)):
        out[key] = _positive_int(key, args.get(key, str(default)), 1, 1 << 40)
    if "vocab_size" in args:
        if tokenizer != "train":
            raise UsageError("vocab_size= only applies to tokenizer=train (a given tokenizer has its own vocabulary)")
        # 256 bytes + <|endoftext|> is the smallest byte-level vocabulary; ids must fit uint32
        out["vocab_size"] = _positive_int("vocab_size", args["vocab_size"], 257, (1 << 32) - 1)
    return out


def main(argv: list[str]) -> int:
    """Run the CLI; 0 on success, 2 on bad input (message, no traceback)."""
    try:
        kwargs = parse_args(argv)
        index = tokenize_corpus(**kwargs)
    except UserError as err:  # bad arguments, unreadable input, another tokenization in output=
        print(f"datamodules.tokenize: {err}", file=sys.stderr)
        return 2
    print(summary_line(index, Path(kwargs["output"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
