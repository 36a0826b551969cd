"""evaluate.py end to end on tiny digits and text runs: report files, PNGs, calibration.json, card, exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.after_training import skip_reason
from tests.conftest import run_entry

QUICK = ["explanations.samples=2", "explanations.ig_steps=8", "explanations.shap_samples=32"]
EXPECTED_FIGURES = {"confusion_matrix.png", "roc_pr.png", "reliability_diagram.png", "fairness.png",
                    "explanations.png", "baselines.png"}


def _check_report(run_dir: Path, check_png) -> dict:
    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert EXPECTED_FIGURES <= set(report["figures"])
    for name in report["figures"]:
        check_png(run_dir / "report" / name)
    test = report["classification"]["test"]
    assert sum(c["support"] for c in test["per_class"].values()) == test["n"]
    assert sum(map(sum, test["confusion_matrix"])) == test["n"]
    calibration = json.loads((run_dir / "calibration.json").read_text())
    assert {"temperature", "fitted_on", "nll_before", "nll_after", "ece_before", "ece_after"} <= set(calibration)
    assert calibration["fitted_on"] == "val" and calibration["temperature"] > 0
    assert calibration["nll_after"] <= calibration["nll_before"] + 1e-9
    assert report["baselines"]["best"] in report["baselines"]["models"]
    markdown = (run_dir / "report" / "report.md").read_text()
    assert "## Calibration" in markdown and "![confusion matrices](confusion_matrix.png)" in markdown
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert "Not evaluated yet" not in card and f"T = {calibration['temperature']:.4f}" in card
    return report


@pytest.mark.slow
def test_train_then_evaluate_digits(digits_run: Path, check_png) -> None:
    """train.py evaluate=true wrote the full report; its verdict matches the default threshold."""
    report = _check_report(digits_run, check_png)
    assert report["kind"] == "image" and report["fairness"]["attribute"] == "ink_density"
    assert set(report["fairness"]["groups"]) == {"ink_heavy", "ink_light"}
    assert report["explanations"]["method"] == ["IntegratedGradients", "KernelShap"]
    expected = "PASS" if report["classification"]["test"]["accuracy"] >= 0.9 else "FAIL"
    assert report["success"]["verdict"] == expected
    # which checkpoint, and how it was chosen (trainers.checkpoints' one rule)
    assert report["checkpoint"] == json.loads((digits_run / "run.json").read_text())["best_checkpoint"]
    assert report["checkpoint_choice"] == "best (run.json best_checkpoint)"


@pytest.mark.slow
def test_exit_code_follows_success_threshold(digits_run: Path) -> None:
    lean = ["fairness.enabled=false", "explanations.enabled=false", "baselines.enabled=false", "model_card=false"]
    acc = json.loads((digits_run / "report" / "report.json").read_text())["classification"]["test"]["accuracy"]
    passed = run_entry("evaluate.py", f"run_dir={digits_run}", *lean, f"success.threshold={acc - 0.01:.4f}", check=False)
    assert passed.returncode == 0, passed.stderr[-2000:]
    assert "→ PASS" in passed.stdout
    failed = run_entry("evaluate.py", f"run_dir={digits_run}", *lean, f"success.threshold={min(acc + 0.01, 1.01):.4f}",
                       check=False)
    assert failed.returncode == 3 and "→ FAIL" in failed.stdout
    report = json.loads((digits_run / "report" / "report.json").read_text())
    assert report["success"]["verdict"] == "FAIL"


def test_config_typo_is_named() -> None:
    from core.errors import ConfigError
    from evaluation.config import validate

    with pytest.raises(ConfigError, match=r"unknown key 'success.treshold'. Did you mean 'threshold'\?") as err:
        validate({"run_dir": "x", "success": {"treshold": 0.5}})
    assert err.value.exit_code == 2
    assert validate({"run_dir": "x", "success": {"threshold": 0.5}}).success.metric == "test/acc"


@pytest.mark.slow
def test_evaluate_text_run(text_run: Path, check_png) -> None:
    assert not (text_run / "report").exists()  # evaluate=false
    proc = run_entry("evaluate.py", f"run_dir={text_run}", *QUICK, "success.metric=test/f1_macro",
                     "success.threshold=0.0", "fairness.group=column:label")
    assert "→ PASS" in proc.stdout
    report = _check_report(text_run, check_png)
    assert report["kind"] == "text" and report["baselines"]["features"].startswith("TF-IDF")
    sample = report["explanations"]["samples"][0]
    assert sample["integrated_gradients"] and sample["kernel_shap"]
    assert all(token not in ("[CLS]", "[SEP]", "[PAD]") for token, *_ in sample["integrated_gradients"])
    assert set(report["fairness"]["groups"]) == {"account", "billing", "shipping", "technical"}


def test_fast_dev_run_is_not_evaluated() -> None:
    from omegaconf import OmegaConf

    assert "fast_dev_run" in skip_reason(OmegaConf.create({"trainer": {"fast_dev_run": True}}))
    assert skip_reason(OmegaConf.create({"trainer": {"fast_dev_run": False}})) is None


def test_evaluate_needs_a_run_dir(tmp_path: Path) -> None:
    from evaluation.predictions import load_evaluation_data

    with pytest.raises(FileNotFoundError, match="config.yaml does not exist"):
        load_evaluation_data(tmp_path)
