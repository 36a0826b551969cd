"""Fairness: metrics per group (fairlearn MetricFrame) and one-vs-rest demographic-parity / equalized-odds gaps."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score, f1_score

from core.figures import new_figure, save_png


def _f1_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def per_class_gaps(y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[str], num_classes: int) -> dict[str, list]:
    """Demographic-parity and equalized-odds differences of each class's one-vs-rest binary problem."""
    dp, eo = [], []
    for k in range(num_classes):
        t, p = (y_true == k).astype(int), (y_pred == k).astype(int)
        dp.append(float(demographic_parity_difference(t, p, sensitive_features=groups)))
        # a group without positives (or negatives) of class k has no TPR (FPR): fairlearn returns nan there
        eo.append(float(equalized_odds_difference(t, p, sensitive_features=groups)))
    return {"demographic_parity_difference": dp, "equalized_odds_difference": eo}


def _worst(values: list[float], labels: list[str]) -> tuple[float | None, str | None]:
    finite = [(v, labels[k]) for k, v in enumerate(values) if np.isfinite(v)]
    return max(finite) if finite else (None, None)


def fairness_report(y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[str], labels: list[str],
                    thresholds: dict[str, float], min_group_size: int = 1) -> dict[str, Any]:
    """Per-group metrics, worst-class gaps and the flags that exceed their thresholds."""
    groups = np.asarray(groups)
    frame = MetricFrame(metrics={"accuracy": accuracy_score, "f1_macro": _f1_macro, "count": lambda t, p: len(t)},
                        y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    per_group = {str(g): {"count": int(row["count"]), "accuracy": float(row["accuracy"]), "f1_macro": float(row["f1_macro"])}
                 for g, row in frame.by_group.iterrows()}
    gaps = per_class_gaps(y_true, y_pred, groups, len(labels))
    out: dict[str, Any] = {"groups": per_group, "per_class": {lab: {k: gaps[k][i] for k in gaps} for i, lab in enumerate(labels)},
                           "accuracy_difference": float(frame.difference()["accuracy"]), "thresholds": dict(thresholds),
                           "flags": []}
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        value, worst_class = _worst(gaps[key], labels)
        out[key], out[f"{key}_class"] = value, worst_class
        limit = thresholds.get(key)
        if value is not None and limit is not None and value > limit:
            out["flags"].append(f"{key} = {value:.3f} (class {worst_class!r}, one-vs-rest) exceeds {limit}")
    limit = thresholds.get("accuracy_difference")
    if limit is not None and out["accuracy_difference"] > limit:
        out["flags"].append(f"accuracy_difference = {out['accuracy_difference']:.3f} between groups exceeds {limit}")
    small = [g for g, m in per_group.items() if m["count"] < min_group_size]
    if small:
        out["flags"].append(f"groups {small} have fewer than {min_group_size} items: their metrics are noisy")
    out["passed"] = not out["flags"]
    return out


def plot_fairness(report: dict[str, Any], path: Path) -> Path:
    """Accuracy per group, and each class's one-vs-rest DP / EO gaps against the thresholds."""
    fig, (left, right) = new_figure(12, 4.5, 1, 2)
    names = list(report["groups"])
    left.bar(names, [report["groups"][g]["accuracy"] for g in names], color="tab:blue")
    for i, g in enumerate(names):
        left.text(i, 0.02, f"n={report['groups'][g]['count']}", ha="center", color="white")
    left.set_ylim(0, 1.05)
    left.set_title(f"Accuracy per group ({report.get('attribute', '')})")
    classes = list(report["per_class"])
    x = np.arange(len(classes))
    for offset, key, color in ((-0.2, "demographic_parity_difference", "tab:orange"),
                               (0.2, "equalized_odds_difference", "tab:red")):
        values = [np.nan_to_num(report["per_class"][c][key]) for c in classes]
        right.bar(x + offset, values, width=0.4, label=key.replace("_", " "), color=color)
        if report["thresholds"].get(key) is not None:
            right.axhline(report["thresholds"][key], color=color, linestyle="--", linewidth=1)
    right.set_xticks(x, classes, rotation=45 if len(classes) > 6 else 0)
    right.set_title("One-vs-rest gaps per class (dashed: thresholds)")
    right.legend(fontsize=8)
    return save_png(fig, path)
