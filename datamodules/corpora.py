"""The bundled corpus: CPython's own standard library sources, tokenized once into the user's cache."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from datamodules.token_build import tokenize_corpus
from datamodules.token_shards import FORMAT, INDEX, TokenDataError

CORPORA = ("stdlib",)


def cache_root() -> Path:
    """~/.cache/shipyard/corpora (XDG_CACHE_HOME honoured; SHIPYARD_CACHE_DIR overrides)."""
    if os.environ.get("SHIPYARD_CACHE_DIR"):
        return Path(os.environ["SHIPYARD_CACHE_DIR"]) / "corpora"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shipyard" / "corpora"


def stdlib_files() -> tuple[Path, list[Path]]:
    """The interpreter's top-level stdlib modules (*.py, no packages, no tests): ~4.7 MB of real code.

    Top-level modules only keeps the corpus small enough for CPU experiments and leaves out the test
    suites and vendored data (test/, idlelib/, pydoc_data/) that packages carry.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file() and not p.name.startswith("test"))
    if not files:
        raise FileNotFoundError(f"no *.py files in the interpreter's stdlib folder {root}")
    return root, files


def corpus_dir(name: str = "stdlib", vocab_size: int = 8192, cache: Path | None = None) -> Path:
    """The tokenized folder of a bundled corpus; tokenized on first use, safely under concurrent ranks."""
    if name not in CORPORA:
        raise TokenDataError(f"datamodule.corpus={name!r} is not a bundled corpus; choose one of {CORPORA} "
                         "or set datamodule.data_dir= to a folder made by `python -m datamodules.tokenize`")
    root, files = stdlib_files()
    key = {"corpus": name, "python": sys.version.split()[0], "format": FORMAT, "vocab_size": vocab_size,
           "files": [(p.name, p.stat().st_size) for p in files]}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    base = Path(cache) if cache else cache_root()
    final = base / f"{name}-{vocab_size}-{digest}"
    if (final / INDEX).exists():
        return final
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{final.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one rank tokenizes, the others wait and then find it done
        if not (final / INDEX).exists():
            print(f"tokenizing the bundled {name} corpus ({len(files)} files) into {final} (once per machine)",
                  file=sys.stderr, flush=True)
            staging = base / f".{final.name}.partial"  # resumable if a first tokenization was killed
            tokenize_corpus(root, staging, tokenizer="train", vocab_size=vocab_size, files=files)
            shutil.rmtree(final, ignore_errors=True)
            os.rename(staging, final)  # the finished folder appears whole
    return final
