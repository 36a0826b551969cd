"""Success criteria: one configured metric against a threshold → PASS / FAIL (and evaluate.py's exit code)."""
from __future__ import annotations

from typing import Any

from core.errors import ConfigError

EXIT_PASS = 0
EXIT_FAIL = 3  # distinct from a crash (1) and a bad config (2), so CI can tell "worse model" from "broken"


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Every scalar a success criterion may name, as 'split/metric' (e.g. test/acc, test/ece_after)."""
    out: dict[str, float] = {}
    for split, m in (report.get("classification") or {}).items():
        out.update({f"{split}/acc": m["accuracy"], f"{split}/accuracy": m["accuracy"],
                    f"{split}/f1_macro": m["macro"]["f1"], f"{split}/f1_weighted": m["weighted"]["f1"],
                    f"{split}/precision_macro": m["macro"]["precision"], f"{split}/recall_macro": m["macro"]["recall"]})
        for key in ("roc_auc_macro", "pr_auc_macro"):
            if m.get(key) is not None:
                out[f"{split}/{key}"] = m[key]
    for split, m in (report.get("regression") or {}).items():
        out.update({f"{split}/{k}": m[k] for k in ("rmse", "mae", "r2")})
    lm = report.get("language_modeling") or {}
    for split in ("val", "test"):
        if split in lm:
            out.update({f"{split}/loss": lm[split]["loss"], f"{split}/perplexity": lm[split]["perplexity"]})
    if "test" in lm and "bits_per_byte" in lm["test"]:
        out["test/bits_per_byte"] = lm["test"]["bits_per_byte"]
    if report.get("conformal"):
        out["test/coverage"] = report["conformal"]["test_coverage"]
    cal = report.get("calibration") or {}
    for key in ("ece_before", "ece_after", "mce_before", "mce_after"):
        if key in cal:
            out[f"test/{key}"] = cal[key]
    margin = (report.get("baselines") or {}).get("margin") or {}
    # test/baseline_margin_<metric> >= 0 requires beating the best baseline (positive = the deep model is better)
    out.update({f"test/baseline_margin_{k}": v for k, v in margin.items()})
    return out


NOT_SET = "NOT SET"  # no threshold configured: the metric is reported, nothing is judged (exit 0)


def verdict(report: dict[str, Any], metric: str, threshold: float | None, mode: str = "max") -> dict[str, Any]:
    """PASS when the metric is >= threshold (mode max) or <= threshold (mode min); NOT SET without a threshold."""
    if mode not in ("max", "min"):
        raise ConfigError(f"success.mode={mode!r}: use max (higher is better) or min")
    metrics = flat_metrics(report)
    if metric not in metrics:
        raise ConfigError(f"success.metric={metric!r} is not in the report; available: {sorted(metrics)}")
    value = metrics[metric]
    if threshold is None:
        result = NOT_SET
    else:
        result = "PASS" if (value >= threshold if mode == "max" else value <= threshold) else "FAIL"
    return {"metric": metric, "threshold": threshold, "mode": mode, "greater_is_better": mode == "max",
            "value": value, "verdict": result}


def run_success(evaluate_success: Any, run_cfg: Any) -> tuple[str, float | None, str]:
    """(metric, threshold, mode): evaluate.py's own when it sets a threshold, else the run's experiment's `success`."""
    chosen = evaluate_success
    from_run = run_cfg.get("success") if run_cfg is not None else None
    if evaluate_success.get("threshold") is None and from_run and from_run.get("threshold") is not None:
        chosen = from_run
    return (chosen.get("metric", "test/acc"), chosen.get("threshold"), chosen.get("mode", "max"))
