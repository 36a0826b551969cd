"""Calibration: ECE/MCE (torchmetrics), reliability diagram, temperature scaling fitted on validation NLL.

The fitted temperature is the run's contract with export: RUN_DIR/calibration.json holds
{"temperature", "fitted_on": "val", "nll_before", "nll_after", "ece_before", "ece_after", ...};
export copies `temperature` into the served PreprocessSpec and handlers divide logits by it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.calibration import calibration_curve
from torchmetrics.functional.classification import multiclass_calibration_error

from core.figures import new_figure, save_png
from core.rundir import RunDir
from trainers.rundir import atomic_write_json


def calibration_errors(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """Expected (L1) and maximum calibration error of the top-label confidence."""
    num_classes = probs.shape[-1]
    return {
        "ece": float(multiclass_calibration_error(probs, labels, num_classes, n_bins=n_bins, norm="l1")),
        "mce": float(multiclass_calibration_error(probs, labels, num_classes, n_bins=n_bins, norm="max")),
    }


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of logits / T."""
    return float(F.cross_entropy(logits / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float] = (0.05, 20.0),
                    max_iter: int = 100) -> float:
    """The T in bounds minimising NLL(logits / T) (LBFGS on log T, so T stays positive).

    Bounded because a validation split without errors has no minimum (NLL keeps falling as T → 0).
    """
    logits = logits.detach().double()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        return 1.0
    temperature = min(max(temperature, bounds[0]), bounds[1])
    if nll(logits, labels, temperature) > nll(logits, labels):
        return 1.0  # never make NLL worse than no scaling
    return temperature


def reliability_diagram(curves: dict[str, tuple[np.ndarray, np.ndarray]], confidences: np.ndarray, n_bins: int,
                        path: Path) -> Path:
    """Accuracy vs confidence per bin (one line per curve) above a histogram of confidences."""
    fig, (top, bottom) = new_figure(6, 7, 2, 1)
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfectly calibrated")
    for name, (accuracy, confidence) in curves.items():
        top.plot(confidence, accuracy, marker="o", label=name)
    top.set_xlabel("confidence (top-label probability)")
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.legend(loc="upper left")
    top.set_title("Reliability diagram (test)")
    bottom.hist(confidences, bins=n_bins, range=(0, 1), color="tab:gray")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("count")
    return save_png(fig, path)


def _curve(probs: torch.Tensor, labels: torch.Tensor, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    confidence, predicted = probs.max(dim=-1)
    correct = (predicted == labels).int().numpy()
    return calibration_curve(correct, confidence.numpy(), n_bins=n_bins, strategy="uniform")


def calibrate(val_logits: torch.Tensor, val_labels: torch.Tensor, test_logits: torch.Tensor, test_labels: torch.Tensor,
              n_bins: int, figure_path: Path | None = None,
              bounds: tuple[float, float] = (0.05, 20.0)) -> dict[str, Any]:
    """Fit T on val; NLL before/after on val, ECE/MCE before/after on test; optional reliability diagram."""
    val_errors = int((val_logits.argmax(-1) != val_labels).sum())
    # without a single validation error NLL has no minimum (it falls as T → 0): fitting would only
    # push T to its lower bound and make every served probability ~1, so T stays 1 (and the report says so)
    temperature = fit_temperature(val_logits, val_labels, bounds) if val_errors else 1.0
    before = calibration_errors(test_logits.softmax(-1), test_labels, n_bins)
    after = calibration_errors((test_logits / temperature).softmax(-1), test_labels, n_bins)
    result: dict[str, Any] = {
        "temperature": temperature,
        "fitted_on": "val",
        "nll_before": nll(val_logits, val_labels),
        "nll_after": nll(val_logits, val_labels, temperature),
        "test_nll_before": nll(test_logits, test_labels),
        "test_nll_after": nll(test_logits, test_labels, temperature),
        "ece_before": before["ece"], "ece_after": after["ece"],
        "mce_before": before["mce"], "mce_after": after["mce"],
        "n_bins": n_bins,
        "evaluated_on": "test",
        "temperature_bounds": list(bounds),
        "at_bound": temperature in bounds,
        "val_errors": val_errors,
    }
    if val_errors == 0:
        result["note"] = ("the validation split has no errors, so NLL has no minimum (it falls as T shrinks): "
                          "T is left at 1.0; a larger validation split allows a meaningful fit")
    if figure_path is not None:
        curves = {"before": _curve(test_logits.softmax(-1), test_labels, n_bins),
                  f"after (T={temperature:.2f})": _curve((test_logits / temperature).softmax(-1), test_labels, n_bins)}
        reliability_diagram(curves, test_logits.softmax(-1).max(-1).values.numpy(), n_bins, figure_path)
    return result


def write_calibration(run_dir: Path, result: dict[str, Any]) -> Path:
    """RUN_DIR/calibration.json (atomic): the temperature export applies, with its evidence."""
    path = RunDir(run_dir).calibration_path
    atomic_write_json(path, {k: v for k, v in result.items() if k != "figure"})
    return path
