"""Read prediction logs (rotating JSONL) into records and feature columns comparable with a reference."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from runtime.prediction_features import IMAGE_NUMERIC, LOGIT_NUMERIC, oov_rate, words

TEXT_LOGGED = ("char_length", "token_count", "unk_rate")
VOCAB_TOP = 50  # words tracked by the vocabulary feature; the rest count as "__other__"


def log_files(log_dir: str | Path) -> list[Path]:
    """Every prediction log in a folder, rotated ones included (`*.jsonl`, `*.jsonl.N`)."""
    folder = Path(log_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"current={folder} is not a folder of prediction logs (*.jsonl)")
    return sorted(p for p in folder.rglob("*.jsonl*") if p.is_file())


def read_records(log_dir: str | Path, model: str | None = None, version: str | None = None,
                 since: float | None = None, until: float | None = None) -> tuple[list[dict[str, Any]], int]:
    """Records matching the filters, and how many lines were unreadable (reported, never silently dropped)."""
    records, bad = [], 0
    for path in log_files(log_dir):
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1  # a line cut by a crash mid-write
                continue
            if model and rec.get("model") != model:
                continue
            if version and str(rec.get("version")) != str(version):
                continue
            ts = rec.get("ts", 0.0)
            if (since is not None and ts < since) or (until is not None and ts > until):
                continue
            records.append(rec)
    return records, bad


def feature_names(kind: str) -> tuple[list[str], list[str]]:
    """Numeric and categorical features the verdict uses for an input kind."""
    numeric = list(IMAGE_NUMERIC) if kind == "image" else [*TEXT_LOGGED, "oov_rate"]
    return numeric + list(LOGIT_NUMERIC), ["prediction"]


def columns(records: Iterable[dict[str, Any]], vocabulary: set[str] | None = None) -> dict[str, list]:
    """Feature columns from log records (text records also get oov_rate from their redacted text)."""
    cols: dict[str, list] = {}
    for rec in records:
        for key, value in rec.get("features", {}).items():
            cols.setdefault(key, []).append(value)
        pred = rec.get("prediction", {})
        cols.setdefault("prediction", []).append(pred.get("label"))
        if "text" in rec:
            cols.setdefault("text", []).append(rec["text"])
            cols.setdefault("oov_rate", []).append(oov_rate(rec["text"], vocabulary or set()))
    return cols


def vocabulary_column(texts: Iterable[str], top: list[str]) -> list[str]:
    """Each word of each text as a category (top training words by name, the rest pooled)."""
    keep = set(top)
    return [w if w in keep else "__other__" for t in texts for w in words(t)]


def top_words(texts: Iterable[str], n: int = VOCAB_TOP) -> list[str]:
    """The n most frequent words of the reference texts."""
    return [w for w, _ in Counter(w for t in texts for w in words(t)).most_common(n)]
