"""MODEL_CARD.md: written from a spine-only run, richer once a report exists."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evaluation.model_card import write_model_card


def _spine_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({
        "name": "toy", "seed": 1, "datamodule": {"_target_": "datamodules.digits.DigitsDataModule", "batch_size": 8},
        "model": {"net": {"_target_": "trainers.nets.cnn.SimpleCNN"}, "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.1}},
        "trainer": {"max_epochs": 2}}))
    (run / "run.json").write_text(json.dumps({"run_id": "r1", "experiment": "toy", "labels": ["a", "b"], "seed": 1}))
    (run / "metrics.json").write_text(json.dumps({"test/acc": 0.75}))
    (run / "preprocess.json").write_text(json.dumps({"kind": "image", "labels": ["a", "b"]}))
    (run / "data" / "bad_records.json").write_text(json.dumps(
        {"total_records": 10, "bad_count": 1, "bad_records": [{"where": "x.png", "reason": "truncated"}]}))
    return run


def test_card_from_spine_only(tmp_path: Path) -> None:
    text = write_model_card(_spine_run(tmp_path)).read_text()
    for heading in ("Intended use", "Data and its checks", "Training setup", "Metrics", "Calibration",
                    "Fairness findings", "Limitations"):
        assert f"## {heading}" in text
    assert "| test/acc | 0.7500 |" in text and "x.png" in text
    assert text.count("Not evaluated yet") >= 3


def test_card_grows_with_report(tmp_path: Path) -> None:
    run = _spine_run(tmp_path)
    (run / "report").mkdir()
    (run / "calibration.json").write_text(json.dumps(
        {"temperature": 1.7, "fitted_on": "val", "nll_before": 0.5, "nll_after": 0.4, "ece_before": 0.12, "ece_after": 0.03}))
    (run / "report" / "report.json").write_text(json.dumps({
        "classification": {"test": {"n": 4, "accuracy": 0.75, "macro": {"f1": 0.7}, "weighted": {"f1": 0.72},
                                    "per_class": {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2}}}},
        "fairness": {"attribute": "ink", "groups": {"low": {"count": 2, "accuracy": 1.0}}, "flags": ["dp too high"],
                     "demographic_parity_difference": 0.4, "equalized_odds_difference": 0.5,
                     "thresholds": {"demographic_parity_difference": 0.2, "equalized_odds_difference": 0.2}},
        "baselines": {"best": "logistic_regression", "metric": "accuracy", "margin": {"accuracy": -0.1}},
        "success": {"metric": "test/acc", "threshold": 0.9, "value": 0.75, "verdict": "FAIL"}}))
    text = write_model_card(run).read_text()
    assert "Not evaluated yet" not in text
    assert "T = 1.7000" in text and "| ECE | 0.1200 | 0.0300 |" in text
    assert "Fairness flag: dp too high" in text and "does not beat the best simple baseline" in text
    assert "**FAIL**" in text


def test_card_needs_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a Shipyard run directory"):
        write_model_card(tmp_path)


@pytest.mark.parametrize("task, kind, says, never", [
    ("classification", "image", "Classifies a single image", "Predicts a number"),
    ("classification", "tabular", "Classifies one row of a table", "single image"),
    ("regression", "tabular", "Predicts a number for one row", "Classifies"),
    ("language_modeling", "text", "Continues a text prompt", "Classifies"),
])
def test_card_wording_comes_from_the_task(tmp_path: Path, task: str, kind: str, says: str, never: str) -> None:
    run = _spine_run(tmp_path)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "task": task}))
    (run / "preprocess.json").write_text(json.dumps({"kind": kind, "labels": []}))
    text = write_model_card(run).read_text()
    use = text.split("## Intended use", 1)[1].split("##", 1)[0]
    limitations = text.split("## Limitations", 1)[1]
    assert says in use and never not in use and never not in limitations
    if task != "classification":
        assert "Labels outside the model's label list" not in limitations
