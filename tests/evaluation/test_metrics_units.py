"""Known-answer tests of the evaluation library: metrics, calibration, fairness, baselines, success, CV splits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from datamodules.cv import cv_splits
from evaluation.baselines import compare, plot_baselines, run_baselines
from evaluation.calibration import calibrate, calibration_errors, fit_temperature, nll
from evaluation.classification import classification_metrics, plot_confusion_matrices, plot_roc_pr
from datamodules.cv import cv_mode, cv_sweep_params
from evaluation.cross_validation import summarize
from evaluation.fairness import fairness_report, plot_fairness
from evaluation.success import verdict

LABELS = ["a", "b", "c"]
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2, 2, 0])


def _probs(pred: np.ndarray, k: int = 3) -> np.ndarray:
    p = np.full((len(pred), k), 0.1)
    p[np.arange(len(pred)), pred] = 0.8
    return p


def test_confusion_matrix_and_per_class_metrics_by_hand(tmp_path: Path, check_png) -> None:
    m = classification_metrics(Y_TRUE, Y_PRED, _probs(Y_PRED), LABELS)
    # rows = true class, columns = predicted: a→(a,a,b) b→(b,c) c→(c,c,a)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    assert m["accuracy"] == pytest.approx(5 / 8)
    a, b, c = (m["per_class"][k] for k in LABELS)
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (b["precision"], b["recall"], b["support"]) == (pytest.approx(1 / 2), pytest.approx(1 / 2), 2)
    assert (c["precision"], c["recall"], c["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert m["macro"]["f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert m["weighted"]["recall"] == pytest.approx(5 / 8)
    assert 0.5 < m["roc_auc_macro"] <= 1.0 and m["per_class"]["a"]["pr_auc"] is not None
    check_png(plot_confusion_matrices(Y_TRUE, Y_PRED, LABELS, tmp_path / "cm.png"))
    check_png(plot_roc_pr(Y_TRUE, _probs(Y_PRED), LABELS, tmp_path / "roc.png"))


def test_ece_zero_when_calibrated_and_large_when_overconfident() -> None:
    n = 1000
    labels = torch.zeros(n, dtype=torch.long)
    labels[:200] = 1  # confidence 0.8 on class 0, right 80% of the time
    calibrated = calibration_errors(torch.tensor([[0.8, 0.2]]).repeat(n, 1), labels)
    assert calibrated["ece"] == pytest.approx(0.0, abs=1e-4)
    labels[:400] = 1  # confidence 0.99, right 60% of the time
    overconfident = calibration_errors(torch.tensor([[0.99, 0.01]]).repeat(n, 1), labels)
    assert overconfident["ece"] > 0.2 and overconfident["ece"] == pytest.approx(0.39, abs=1e-3)
    assert overconfident["mce"] >= overconfident["ece"]


def test_temperature_scaling_lowers_validation_nll(tmp_path: Path, check_png) -> None:
    generator = torch.Generator().manual_seed(0)
    true = torch.randn(600, 4, generator=generator)
    labels = (true + torch.randn(600, 4, generator=generator)).argmax(-1)
    logits = true * 6  # overconfident: too-large logits
    temperature = fit_temperature(logits[:300], labels[:300])
    assert temperature > 1.5
    assert nll(logits[:300], labels[:300], temperature) < nll(logits[:300], labels[:300])
    result = calibrate(logits[:300], labels[:300], logits[300:], labels[300:], 15, tmp_path / "rel.png")
    assert result["nll_after"] < result["nll_before"] and result["ece_after"] < result["ece_before"]
    assert result["fitted_on"] == "val" and result["temperature"] == pytest.approx(temperature)
    check_png(tmp_path / "rel.png")


def test_no_temperature_fit_without_validation_errors() -> None:
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]]).repeat(10, 1)
    labels = torch.tensor([0, 1]).repeat(10)
    result = calibrate(logits, labels, logits, labels, 10)
    assert result["temperature"] == 1.0 and "no errors" in result["note"]


def test_fairness_differences_equal_hand_computed_values(tmp_path: Path, check_png) -> None:
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    groups = ["g1"] * 4 + ["g2"] * 4
    report = fairness_report(y_true, y_pred, groups, ["neg", "pos"],
                             {"demographic_parity_difference": 0.2, "equalized_odds_difference": 0.6,
                              "accuracy_difference": 0.1})
    # selection rate of "pos": g1 3/4, g2 1/4 → DP 0.5; TPR g1 1, g2 1/2; FPR g1 1/2, g2 0 → EO 0.5
    assert report["demographic_parity_difference"] == pytest.approx(0.5)
    assert report["equalized_odds_difference"] == pytest.approx(0.5)
    assert report["groups"]["g1"] == {"count": 4, "accuracy": 0.75, "f1_macro": pytest.approx(0.7333, abs=1e-4)}
    assert report["accuracy_difference"] == pytest.approx(0.0)
    assert len(report["flags"]) == 1 and "demographic_parity_difference" in report["flags"][0]
    assert not report["passed"]
    report["attribute"] = "toy"
    check_png(plot_fairness(report, tmp_path / "fair.png"))


def test_baselines_margin_and_plot(tmp_path: Path, check_png) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    y = (x[:, 0] > 0).astype(int)
    models = run_baselines(x[:80], y[:80], x[80:], y[80:], "image", ["logistic_regression", "random_forest"], 0)
    assert models["logistic_regression"]["accuracy"] > 0.85
    result = compare({"accuracy": 1.0, "f1_macro": 1.0}, models, "accuracy")
    best = result["best"]
    assert result["margin"]["accuracy"] == pytest.approx(1.0 - models[best]["accuracy"])
    assert max(m["accuracy"] for m in models.values()) == models[best]["accuracy"]
    texts = ["refund my card charge", "package never arrived"] * 20
    labels = np.array([0, 1] * 20)
    text_models = run_baselines(texts, labels, texts, labels, "text", ["logistic_regression", "gradient_boosting"], 0)
    assert text_models["logistic_regression"]["accuracy"] == 1.0
    check_png(plot_baselines({"accuracy": 1.0, "f1_macro": 1.0}, models, tmp_path / "base.png"))


def test_success_verdict() -> None:
    report = {"classification": {"test": {"accuracy": 0.8, "macro": {"f1": 0.7, "precision": 0.7, "recall": 0.7},
                                          "weighted": {"f1": 0.75}, "roc_auc_macro": 0.9, "pr_auc_macro": 0.8}},
              "calibration": {"ece_after": 0.05}}
    assert verdict(report, "test/acc", 0.8)["verdict"] == "PASS"
    assert verdict(report, "test/acc", 0.81)["verdict"] == "FAIL"
    assert verdict(report, "test/ece_after", 0.04, "min")["verdict"] == "FAIL"
    with pytest.raises(ConfigError, match="available"):
        verdict(report, "test/accuracy_typo", 0.5)


def test_cv_splits_partition_the_data() -> None:
    labels = [i % 3 for i in range(60)]
    tests = []
    for fold in range(5):
        s = cv_splits(labels, fold, 5, 0.1, seed=1)
        assert not set(s["train"]) & set(s["val"]) and not set(s["train"]) & set(s["test"])
        assert sorted(s["train"] + s["val"] + s["test"]) == list(range(60))
        tests += s["test"]
    assert sorted(tests) == list(range(60))  # every item is tested exactly once
    fixed = cv_splits(labels, 0, 3, 0.1, seed=1, fixed_test=list(range(50, 60)))
    assert fixed["test"] == list(range(50, 60)) and 16 <= len(fixed["val"]) <= 17  # a third of the 50-item pool
    assert not set(fixed["val"]) & set(range(50, 60))
    with pytest.raises(ValueError, match="cv.fold=5 must be in 0..4"):
        cv_splits(labels, 5, 5, 0.1, 1)
    with pytest.raises(ValueError, match="at most"):
        cv_splits([0] * 10 + [1] * 2, 0, 3, 0.1, 1)


def test_cv_hydra_wiring_and_summary() -> None:
    assert cv_mode(None) is None and cv_mode(5) == "MULTIRUN"
    assert cv_sweep_params(None) == {} and cv_sweep_params(4) == {"cv.fold": "range(0,4)"}
    with pytest.raises(ValueError, match=">= 2"):
        cv_sweep_params(1)
    summary = summarize([{"fold": 0, "metrics": {"test/acc": 0.8}}, {"fold": 2, "metrics": {"test/acc": 0.9}}], 3)
    assert summary["missing"] == [1]
    assert summary["metrics"]["test/acc"]["mean"] == pytest.approx(0.85)
    assert summary["metrics"]["test/acc"]["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
