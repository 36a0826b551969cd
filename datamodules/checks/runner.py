"""Run the data checks on a set-up datamodule, apply thresholds, write data_report.{json,md} and plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from datamodules.checks.basic import class_balance, exact_duplicates, leakage, missing_values
from core.errors import UserError
from core.rundir import DATA_REPORT_JSON as REPORT_JSON
from core.rundir import DATA_REPORT_MD as REPORT_MD
from datamodules.checks.config import DataChecksConfig, load_checks_config
from datamodules.checks.items import collect_items
from datamodules.checks.near_duplicates import near_duplicates
from datamodules.checks.privacy import pii_scan
from datamodules.checks.schema import schema
from datamodules.checks.stats import image_stats, plot_distributions, text_stats


class DataCheckError(UserError, RuntimeError):
    """A configured data-check threshold was exceeded; the message names the check and where."""


def failure_message(failures: list[dict[str, str]], source: str) -> str:
    """One readable message for all failed checks."""
    lines = [f"data checks failed ({source}):"]
    lines += [f"  - {f['check']}: {f['where']}: {f['message']}" for f in failures]
    lines.append("Fix the data, or change the threshold under datamodule.data_checks (null reports without failing).")
    return "\n".join(lines)


def run_checks(dm: Any, node: Any = None, subset: tuple[str, ...] | None = None) -> dict[str, Any]:
    """All checks (or a subset by name) on a datamodule whose setup() ran; returns the report dict."""
    cfg: DataChecksConfig = load_checks_config(node)
    items = collect_items(dm)
    wanted = subset or ("schema", "missing_values", "exact_duplicates", "near_duplicates", "leakage",
                        "class_balance", "statistics", "pii")
    checks: dict[str, dict[str, Any]] = {}
    for name in wanted:
        if name == "schema":
            checks[name] = schema(dm)
        elif name == "missing_values":
            checks[name] = missing_values(dm, cfg)
        elif name == "exact_duplicates":
            checks[name] = exact_duplicates(items, cfg)
        elif name == "near_duplicates":
            checks[name] = near_duplicates(items, cfg, getattr(dm, "seed", 0))
        elif name == "leakage":
            checks[name] = leakage(items, cfg)
        elif name == "class_balance":
            checks[name] = class_balance(items, cfg)
        elif name == "statistics":
            checks[name] = text_stats(items) if items.kind == "text" else image_stats(items)
        elif name == "pii" and items.kind == "text":
            checks[name] = pii_scan(items, cfg)
    failures = [f for c in checks.values() for f in c.get("failures", [])]
    return {"datamodule": type(dm).__name__, "kind": items.kind, "items": len(items.ids),
            "splits": {s: len(items.indices(s)) for s in ("train", "val", "test")},
            "thresholds": vars(cfg), "checks": checks, "failures": failures, "passed": not failures, "_items": items}


def _markdown(report: dict[str, Any], figures: list[str]) -> str:
    lines = [f"# Data report: {report['datamodule']}", "",
             f"**{'PASSED' if report['passed'] else 'FAILED'}** — {report['items']} items "
             f"(train {report['splits']['train']}, val {report['splits']['val']}, test {report['splits']['test']})", "",
             "| check | status | summary |", "|---|---|---|"]
    lines += [f"| {name} | {c['status']} | {c['summary']} |" for name, c in report["checks"].items()]
    if report["failures"]:
        lines += ["", "## Failures", ""] + [f"- **{f['check']}** at {f['where']}: {f['message']}" for f in report["failures"]]
    pii = report["checks"].get("pii")
    if pii and pii["examples"]:
        lines += ["", "## PII examples (redacted)", ""] + [f"- `{e['item']}` ({', '.join(e['kinds'])}): {e['redacted']}"
                                                         for e in pii["examples"]]
    leaks = report["checks"].get("leakage", {}).get("pairs", {})
    if any(leaks.values()):
        lines += ["", "## Items in two splits", ""]
        lines += [f"- {splits}: `{a}` == `{b}`" for splits, pairs in leaks.items() for a, b in pairs]
    lines += ["", *[f"![{f}]({f})" for f in figures]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path, plots: bool = True) -> Path:
    """data_report.json, data_report.md and distribution plots into out_dir (atomic writes)."""
    from core.atomic import atomic_write_json, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    items = report["_items"]
    figures = []
    if plots and "statistics" in report["checks"] and "class_balance" in report["checks"]:
        figures = plot_distributions(items, report["checks"]["statistics"], report["checks"]["class_balance"], out_dir)
    clean = {k: v for k, v in report.items() if k != "_items"}
    clean["checks"] = {n: {k: v for k, v in c.items() if not k.startswith("_")} for n, c in report["checks"].items()}
    clean["figures"] = figures
    atomic_write_json(out_dir / REPORT_JSON, clean)
    atomic_write_text(out_dir / REPORT_MD, _markdown(report, figures))
    return out_dir / REPORT_JSON
