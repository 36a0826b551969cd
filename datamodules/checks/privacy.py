"""PII scan of texts: counts per kind, share of texts affected, redacted examples (never the raw values)."""
from __future__ import annotations

from typing import Any

from datamodules.checks.config import DataChecksConfig
from datamodules.checks.items import DataItems
from runtime.pii import PII_KINDS, find_pii, redact


def pii_scan(items: DataItems, cfg: DataChecksConfig) -> dict[str, Any]:
    """Emails, phone numbers, card numbers (Luhn) and IP addresses in every text."""
    counts = {k: 0 for k in PII_KINDS}
    affected, examples = 0, []
    for i in range(len(items.ids)):
        text = items.load(i)
        found = find_pii(text)
        if not found:
            continue
        affected += 1
        for match in found:
            counts[match.kind] += 1
        if len(examples) < cfg.max_examples:
            examples.append({"item": items.ids[i], "kinds": sorted({m.kind for m in found}), "redacted": redact(text)[:300]})
    fraction = affected / max(len(items.ids), 1)
    failures = []
    if cfg.max_pii_fraction is not None and fraction > cfg.max_pii_fraction:
        failures.append({"check": "pii", "where": f"{affected} texts, e.g. {', '.join(e['item'] for e in examples)}",
                         "message": f"{fraction:.3f} of texts contain PII, above {cfg.max_pii_fraction}"})
    return {"status": "fail" if failures else ("warn" if affected else "ok"),
            "summary": f"{affected} texts with PII: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
            "counts": counts, "texts_affected": affected, "fraction": fraction, "examples": examples,
            "failures": failures}
