"""Classification metrics: per-class P/R/F1/support, averages, confusion matrices, one-vs-rest ROC/PR AUC."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from core.figures import Figure, new_figure, save_png


def _ovr_auc(y_true: np.ndarray, probs: np.ndarray, k: int, score: Any) -> float | None:
    positives = (y_true == k).astype(int)
    if positives.min() == positives.max():  # AUC is undefined when a class is absent (or everything)
        return None
    return float(score(positives, probs[:, k]))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Per-class and averaged metrics of one split (sklearn does the arithmetic)."""
    ks = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ks, zero_division=0)
    per_class: dict[str, dict[str, Any]] = {}
    for k, label in enumerate(labels):
        per_class[label] = {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k]),
                            "roc_auc": _ovr_auc(y_true, probs, k, roc_auc_score),
                            "pr_auc": _ovr_auc(y_true, probs, k, average_precision_score)}
    out: dict[str, Any] = {"n": int(len(y_true)), "accuracy": float(accuracy_score(y_true, y_pred)), "per_class": per_class}
    for average in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, labels=ks, average=average, zero_division=0)
        out[average] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    present = [k for k in ks if per_class[labels[k]]["roc_auc"] is not None]
    out["roc_auc_macro"] = float(np.mean([per_class[labels[k]]["roc_auc"] for k in present])) if present else None
    out["pr_auc_macro"] = float(np.mean([per_class[labels[k]]["pr_auc"] for k in present])) if present else None
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=ks).tolist()
    return out


def _tick_label(label: str, width: int = 14) -> str:
    """A class name wrapped onto lines of at most `width` characters (long names stay readable)."""
    return "\n".join(textwrap.wrap(str(label), width)) or str(label)


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> Figure:
    """The count matrix and the row-normalised (recall) matrix side by side, sized by the class count.

    Beyond a few classes (or with long names) the predicted-class names on the x axis stand vertical, long
    names wrapped, so that neighbouring tick labels never overlap.
    """
    n = len(labels)
    names = [_tick_label(label) for label in labels]
    longest = max((len(line) for name in names for line in name.splitlines()), default=1)
    size = max(4.5, 0.5 * n + 0.09 * longest + 2.5)  # cells + room for the (rotated) names
    fig, axes = new_figure(2 * size, size, 1, 2)
    rotate = n > 5 or longest > 8
    for ax, normalize, title in ((axes[0], None, "counts"), (axes[1], "true", "row-normalised (recall)")):
        ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=list(range(n)), display_labels=names,
                                                normalize=normalize, ax=ax, colorbar=False,
                                                values_format="d" if normalize is None else ".2f",
                                                xticks_rotation="vertical" if rotate else "horizontal")
        if n > 12:  # cell values would crowd the names; keep them legible
            for text in ax.texts:
                text.set_fontsize(max(5, 9 - n // 8))
        ax.set_title(f"Confusion matrix, {title}")
    fig.tight_layout()
    return fig


def plot_confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], path: Path) -> Path:
    """One PNG with the count matrix and the row-normalised (recall) matrix side by side."""
    return save_png(confusion_figure(y_true, y_pred, labels), path)


def plot_roc_pr(y_true: np.ndarray, probs: np.ndarray, labels: list[str], path: Path) -> Path:
    """One-vs-rest ROC and precision-recall curves per class."""
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    fig, axes = new_figure(12, 5, 1, 2)
    for k, label in enumerate(labels):
        positives = (y_true == k).astype(int)
        if positives.min() == positives.max():
            continue
        RocCurveDisplay.from_predictions(positives, probs[:, k], name=label, ax=axes[0], plot_chance_level=k == 0)
        PrecisionRecallDisplay.from_predictions(positives, probs[:, k], name=label, ax=axes[1])
    axes[0].set_title("ROC, one-vs-rest")
    axes[1].set_title("Precision-recall, one-vs-rest")
    for ax in axes:
        ax.legend(fontsize=7, loc="lower right" if ax is axes[0] else "lower left")
    return save_png(fig, path)
