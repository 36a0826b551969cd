"""Data checks for tables: schema and ranges, missing values, duplicates, leakage, target, cardinality, PII."""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from typing import Any

import numpy as np

from core.rundir import DATA_REPORT_JSON, DATA_REPORT_MD
from datamodules.checks.config import DataChecksConfig, load_checks_config
from runtime.pii import find_pii, redact
from datamodules.tabular_fit import is_missing
from runtime.tabular import RowError, parse_number

log = logging.getLogger(__name__)
Result = dict[str, Any]
SPLITS = ("train", "val", "test")
TABLE_CHECKS = ("schema", "missing_values", "exact_duplicates", "leakage", "target", "cardinality", "pii")
SETUP_CHECKS = ("missing_values", "leakage", "target")
HIGH_CARDINALITY_SHARE = 0.5  # a categorical column with more distinct values than this share of rows


def _fail(check: str, where: str, message: str) -> dict[str, str]:
    return {"check": check, "where": where, "message": message}


def _rows(dm: Any, split: str) -> list[dict[str, Any]]:
    return dm.split_rows(split)


def schema(dm: Any, cfg: DataChecksConfig) -> Result:
    """Roles and types; allowed ranges from the training split; val/test values outside them."""
    spec = dm.spec
    columns: dict[str, Any] = {}
    for col in spec.numeric:
        outside = {}
        for split in ("val", "test"):
            values = [parse_number(col.name, r[col.name]) for r in _rows(dm, split) if not is_missing(r[col.name])]
            outside[split] = int(sum(v < col.min or v > col.max for v in values))
        columns[col.name] = {"role": "numeric", "type": "number", "range": [col.min, col.max], "outside_range": outside}
    for cat in spec.categorical:
        unseen = {s: int(sum(str(r[cat.name]).strip() not in cat.index for r in _rows(dm, s) if not is_missing(r[cat.name])))
                  for s in ("val", "test")}
        columns[cat.name] = {"role": "categorical", "type": "string", "vocabulary": len(cat.vocab), "unseen": unseen}
    for name in spec.drop:
        columns[name] = {"role": "drop"}
    if spec.id_column:
        columns[spec.id_column] = {"role": "id"}
    outside = sum(c.get("outside_range", {}).get("test", 0) for c in columns.values())
    return {"status": "warn" if outside else "ok", "failures": [], "columns": columns, "task": spec.task,
            "target": spec.target, "inferred": dm.roles.inferred,
            "summary": f"{len(spec.numeric)} numeric, {len(spec.categorical)} categorical, {len(spec.drop)} dropped; "
                       f"{outside} test values outside the training range"}


def missing_values(dm: Any, cfg: DataChecksConfig) -> Result:
    """Missing cells per feature column and split (rows without a target are bad records, gated elsewhere)."""
    columns: dict[str, Any] = {}
    failures = []
    for name in dm.spec.feature_names:
        per = {}
        for split in SPLITS:
            rows = _rows(dm, split)
            per[split] = {"missing": int(sum(is_missing(r[name]) for r in rows)), "rows": len(rows)}
        total = sum(p["missing"] for p in per.values())
        n = sum(p["rows"] for p in per.values())
        columns[name] = {**per, "fraction": total / max(n, 1)}
        if cfg.max_missing_fraction is not None and total / max(n, 1) > cfg.max_missing_fraction:
            failures.append(_fail("missing_values", f"column {name!r}",
                                  f"{total} of {n} missing ({total / n:.3f}) exceeds {cfg.max_missing_fraction}"))
    total = sum(sum(c[s]["missing"] for s in SPLITS) for c in columns.values())
    return {"status": "fail" if failures else ("warn" if total else "ok"), "columns": columns, "failures": failures,
            "bad_records": [vars(b) for b in dm.bad_records[: cfg.max_examples]],
            "summary": f"{total} missing cells in {len(columns)} feature columns; {len(dm.bad_records)} bad rows skipped"}


def _key(row: dict[str, Any], names: list[str]) -> str:
    values = [None if is_missing(row[n]) else str(row[n]).strip() for n in names]
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()


def exact_duplicates(dm: Any, cfg: DataChecksConfig) -> Result:
    """Rows whose features repeat within a split; groups whose targets disagree."""
    names = dm.spec.feature_names
    failures, per_split, conflicting = [], {}, 0
    for split in SPLITS:
        indices = dm.splits[split]
        groups: dict[str, list[int]] = {}
        for i in indices:
            groups.setdefault(_key(dm.rows[i], names), []).append(i)
        extra = sum(len(g) - 1 for g in groups.values())
        conflicting += sum(len({str(dm.rows[i][dm.target]) for i in g}) > 1 for g in groups.values())
        per_split[split] = {"rows": len(indices), "extra_copies": extra,
                            "examples": [[dm.item_ids[i] for i in g] for g in groups.values() if len(g) > 1][: cfg.max_examples]}
        if cfg.max_duplicate_fraction is not None and extra / max(len(indices), 1) > cfg.max_duplicate_fraction:
            failures.append(_fail("exact_duplicates", f"{split} split", f"{extra} extra copies in {len(indices)} rows"))
    total = sum(p["extra_copies"] for p in per_split.values())
    return {"status": "fail" if failures else ("warn" if total else "ok"), "per_split": per_split, "failures": failures,
            "conflicting_targets": conflicting, "summary": f"{total} duplicated feature rows; {conflicting} with conflicting targets"}


def leakage(dm: Any, cfg: DataChecksConfig) -> Result:
    """The same feature row (or id) in two splits."""
    names = dm.spec.feature_names
    keys = {s: {_key(dm.rows[i], names): i for i in dm.splits[s]} for s in SPLITS}
    counts, pairs, failures = {}, {}, []
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = [[dm.item_ids[keys[first][k]], dm.item_ids[i]] for k, i in keys[second].items() if k in keys[first]]
        counts[f"{first}-{second}"] = len(shared)
        pairs[f"{first}-{second}"] = shared[: cfg.max_examples]
        n = len(dm.splits[second])
        if cfg.max_leaked_fraction is not None and len(shared) / max(n, 1) > cfg.max_leaked_fraction:
            failures.append(_fail("leakage", f"{second} split", f"{len(shared)} of {n} rows also in {first}, e.g. {shared[:3]}"))
    total = sum(counts.values())
    return {"status": "fail" if failures else ("warn" if total else "ok"), "counts": counts, "pairs": pairs,
            "failures": failures, "summary": "rows in two splits: " + ", ".join(f"{k} {v}" for k, v in counts.items())}


def target(dm: Any, cfg: DataChecksConfig) -> Result:
    """Class counts per split (imbalance threshold) or the regression target's distribution per split."""
    failures = []
    if dm.task == "classification":
        counts = {s: dict(Counter(dm.labels[dm.item_labels[i]] for i in dm.splits[s])) for s in SPLITS}
        train = [counts["train"].get(label, 0) for label in dm.labels]
        ratio = max(train) / min(train) if min(train) else float("inf")
        if cfg.max_class_imbalance is not None and ratio > cfg.max_class_imbalance:
            failures.append(_fail("target", "train split", f"largest/smallest class = {ratio:.1f} ({counts['train']})"))
        return {"status": "fail" if failures else "ok", "counts": counts, "imbalance_ratio": ratio, "failures": failures,
                "summary": f"{len(dm.labels)} classes, train largest/smallest {ratio:.2f}"}
    stats = {}
    for split in SPLITS:
        y = dm.split_targets(split)
        stats[split] = {"n": int(y.size), "mean": float(y.mean()), "std": float(y.std()),
                        "quantiles": {q: float(np.quantile(y, float(q))) for q in ("0.0", "0.25", "0.5", "0.75", "1.0")}}
    return {"status": "ok", "stats": stats, "failures": failures,
            "summary": f"target mean {stats['train']['mean']:.3g} (train), {stats['test']['mean']:.3g} (test)"}


def cardinality(dm: Any, cfg: DataChecksConfig) -> Result:
    """High-cardinality categorical columns and constant columns (one value in training)."""
    train = _rows(dm, "train")
    high, constant = [], []
    for name in dm.spec.feature_names:
        distinct = {str(r[name]).strip() for r in train if not is_missing(r[name])}
        if len(distinct) <= 1:
            constant.append(name)
        if name in {c.name for c in dm.spec.categorical} and len(distinct) > HIGH_CARDINALITY_SHARE * len(train):
            high.append(name)
    return {"status": "warn" if high or constant else "ok", "high_cardinality": high, "constant": constant, "failures": [],
            "summary": f"high-cardinality: {high or 'none'}; constant: {constant or 'none'}"}


def pii(dm: Any, cfg: DataChecksConfig) -> Result:
    """Emails, phones, cards, IPs in string columns (features and dropped columns alike)."""
    per_column: dict[str, int] = {}
    examples = []
    strings = [c.name for c in dm.spec.categorical] + list(dm.spec.drop)
    for name in strings:
        for i, row in enumerate(dm.rows):
            value = row.get(name)
            if isinstance(value, str) and find_pii(value):
                per_column[name] = per_column.get(name, 0) + 1
                if len(examples) < cfg.max_examples:
                    examples.append({"item": dm.item_ids[i], "column": name, "redacted": redact(value)})
    total = sum(per_column.values())
    failures = []
    if cfg.max_pii_fraction is not None and total / max(len(dm.rows), 1) > cfg.max_pii_fraction:
        failures.append(_fail("pii", f"columns {sorted(per_column)}", f"{total} cells with personal data"))
    return {"status": "fail" if failures else ("warn" if total else "ok"), "columns": per_column, "examples": examples,
            "failures": failures, "summary": f"{total} string cells with personal data in {len(per_column)} columns"}


CHECKS = {"schema": schema, "missing_values": missing_values, "exact_duplicates": exact_duplicates,
          "leakage": leakage, "target": target, "cardinality": cardinality, "pii": pii}


def run_table_checks(dm: Any, node: Any = None, subset: tuple[str, ...] = TABLE_CHECKS) -> Result:
    """Run the table checks on a set-up TabularDataModule; the report has the same shape as run_checks'."""
    cfg = load_checks_config(node)
    checks = {name: CHECKS[name](dm, cfg) for name in subset}
    failures = [f for c in checks.values() for f in c.get("failures", [])]
    return {"datamodule": type(dm).__name__, "kind": "tabular", "items": len(dm.rows),
            "splits": {s: len(dm.splits[s]) for s in SPLITS}, "thresholds": vars(cfg), "checks": checks,
            "failures": failures, "passed": not failures}


def write_table_report(report: Result, out_dir: Any) -> Any:
    """data_report.json and data_report.md of the table checks into out_dir (atomic writes)."""
    from pathlib import Path

    from core.atomic import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# Data report: {report['datamodule']} (table)", "",
             f"**{'PASSED' if report['passed'] else 'FAILED'}** — {report['items']} rows "
             f"(train {report['splits']['train']}, val {report['splits']['val']}, test {report['splits']['test']})", "",
             "| check | status | summary |", "|---|---|---|"]
    lines += [f"| {name} | {c['status']} | {c['summary']} |" for name, c in report["checks"].items()]
    if report["failures"]:
        lines += ["", "## Failures", ""] + [f"- **{f['check']}** at {f['where']}: {f['message']}" for f in report["failures"]]
    schema_check = report["checks"].get("schema")
    if schema_check:
        lines += ["", "## Columns", "", "| column | role | details |", "|---|---|---|"]
        lines += [f"| {n} | {c['role']} | {json.dumps({k: v for k, v in c.items() if k != 'role'})} |"
                  for n, c in schema_check["columns"].items()]
    atomic_write_json(out_dir / DATA_REPORT_JSON, report)
    atomic_write_text(out_dir / DATA_REPORT_MD, "\n".join(lines) + "\n")
    return out_dir / DATA_REPORT_JSON


def run_table_setup_checks(dm: Any, node: Any = None) -> Result:
    """The cheap subset at setup; fails the run only on thresholds a config sets."""
    from datamodules.checks.runner import DataCheckError, failure_message

    report = run_table_checks(dm, node, SETUP_CHECKS)
    for name, check in report["checks"].items():
        if check["status"] != "ok":
            log.warning("data check %s: %s", name, check["summary"])
    if report["failures"]:
        message = failure_message(report["failures"], f"{type(dm).__name__} setup")
        if node is None:
            log.warning(message)
        else:
            raise DataCheckError(message)
    return report


__all__ = ["run_table_checks", "run_table_setup_checks", "RowError"]
