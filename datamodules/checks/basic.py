"""Cheap checks on content keys and labels: missing values, exact duplicates, leakage, class balance."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from datamodules.checks.config import DataChecksConfig
from datamodules.checks.items import DataItems

Result = dict[str, Any]


def _threshold(value: float, limit: float | None, what: str, where: str, fmt: str = ".3f") -> list[dict[str, str]]:
    if limit is None or value <= limit:
        return []
    return [{"check": what, "where": where, "message": f"{value:{fmt}} exceeds the threshold {limit}"}]


def missing_values(dm: Any, cfg: DataChecksConfig) -> Result:
    """Missing cells per column of the source tables (text) or unreadable/missing items (bad records)."""
    columns: dict[str, dict[str, Any]] = {}
    failures = []
    for path in [p for p in (getattr(dm, "train_file", None), getattr(dm, "test_file", None)) if p]:
        from datamodules.text import read_table

        frame = read_table(path, getattr(dm, "na_values", None))
        blank = frame.apply(lambda col: col.isna() | (col.astype(str).str.strip() == ""))
        # rows missing their text or label are bad records, which datamodule.max_bad_fraction already gates
        gated = {getattr(dm, "text_column", None), getattr(dm, "label_column", None)}
        for column in frame.columns:
            count, total = int(blank[column].sum()), len(frame)
            columns[f"{path.name}:{column}"] = {"missing": count, "rows": total,
                                                "gated_by": "max_bad_fraction" if column in gated else "max_missing_fraction"}
            if column not in gated:
                failures += _threshold(count / max(total, 1), cfg.max_missing_fraction, "missing_values",
                                       f"{path.name} column {column!r} ({count} of {total} missing)")
    bad = len(dm.bad_records)
    if not columns:  # images: a missing value is an unreadable file, a bad record (max_bad_fraction gates them)
        columns["items"] = {"missing": bad, "rows": dm.total_records, "gated_by": "max_bad_fraction"}
    total_missing = sum(c["missing"] for c in columns.values())
    return {"status": "fail" if failures else ("warn" if total_missing else "ok"),
            "summary": f"{total_missing} missing values in {len(columns)} columns; {bad} bad records skipped",
            "columns": columns, "bad_records": [vars(b) for b in dm.bad_records[: cfg.max_examples]], "failures": failures}


def exact_duplicates(items: DataItems, cfg: DataChecksConfig) -> Result:
    """Items whose content (normalised text / pixels) repeats within a split."""
    failures, per_split, examples = [], {}, []
    for split in ("train", "val", "test"):
        groups: dict[str, list[int]] = defaultdict(list)
        for i in items.indices(split):
            groups[items.keys[i]].append(i)
        extra = sum(len(g) - 1 for g in groups.values())
        n = len(items.indices(split))
        per_split[split] = {"items": n, "extra_copies": extra}
        examples += [[items.ids[i] for i in g] for g in groups.values() if len(g) > 1][: cfg.max_examples]
        failures += _threshold(extra / max(n, 1), cfg.max_duplicate_fraction, "exact_duplicates",
                               f"{split} split ({extra} extra copies in {n} items)")
    conflicting = [[items.ids[i] for i in g] for g in _groups(items).values()
                   if len({items.labels[i] for i in g}) > 1][: cfg.max_examples]
    total = sum(s["extra_copies"] for s in per_split.values())
    return {"status": "fail" if failures else ("warn" if total else "ok"),
            "summary": f"{total} extra exact copies (" + ", ".join(f"{k} {v['extra_copies']}" for k, v in per_split.items()) + ")"
                       + (f"; {len(conflicting)} duplicate groups with conflicting labels" if conflicting else ""),
            "per_split": per_split, "examples": examples[: cfg.max_examples], "conflicting_labels": conflicting,
            "failures": failures}


def _groups(items: DataItems) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(items.keys):
        groups[key].append(i)
    return groups


def leakage(items: DataItems, cfg: DataChecksConfig) -> Result:
    """The same content in two splits: train-val, train-test and val-test pairs."""
    leaks: dict[str, list[list[str]]] = {}
    failures = []
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        seen = {items.keys[i]: i for i in items.indices(first)}
        pairs = [[items.ids[seen[items.keys[i]]], items.ids[i]] for i in items.indices(second) if items.keys[i] in seen]
        leaks[f"{first}-{second}"] = pairs
        n = len(items.indices(second))
        failures += _threshold(len(pairs) / max(n, 1), cfg.max_leaked_fraction, "leakage",
                               f"{second} split: {len(pairs)} of {n} items also in {first}, e.g. "
                               + "; ".join(f"{a} == {b}" for a, b in pairs[:3]))
    count = sum(len(v) for v in leaks.values())
    return {"status": "fail" if failures else ("warn" if count else "ok"),
            "summary": f"{count} items in two splits (" + ", ".join(f"{k} {len(v)}" for k, v in leaks.items()) + ")",
            "pairs": {k: v[: cfg.max_examples] for k, v in leaks.items()},
            "counts": {k: len(v) for k, v in leaks.items()}, "failures": failures}


def class_balance(items: DataItems, cfg: DataChecksConfig) -> Result:
    """Items per class and split; the train split's largest/smallest class ratio."""
    counts = {split: {items.label_names[k]: 0 for k in range(len(items.label_names))} for split in ("train", "val", "test")}
    for split in counts:
        for label, n in Counter(items.labels[i] for i in items.indices(split)).items():
            counts[split][items.label_names[label]] = n
    train = [n for n in counts["train"].values()]
    ratio = max(train) / min(train) if min(train) > 0 else float("inf")
    failures = _threshold(ratio, cfg.max_class_imbalance, "class_balance",
                          f"train split: largest/smallest class = {ratio:.1f} ({counts['train']})", ".1f")
    empty = [f"{s}:{label}" for s, c in counts.items() for label, n in c.items() if n == 0 and s == "train"]
    if empty:
        failures.append({"check": "class_balance", "where": "train split",
                         "message": f"classes without a training item: {empty}"})
    return {"status": "fail" if failures else "ok", "summary": f"train largest/smallest class ratio {ratio:.2f}",
            "counts": counts, "imbalance_ratio": ratio, "failures": failures}
