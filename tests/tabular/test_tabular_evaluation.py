"""Regression evaluation: CIs, plots, conformal coverage, per-group errors, importance, baselines on the same split."""
from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.success import verdict
from tests.conftest import run_entry
from tests.tabular.conftest import QUIET


def report_of(run_dir):
    return json.loads((run_dir / "report" / "report.json").read_text())


def test_regression_report_sections(tabular_run):
    run_dir = tabular_run("tabular_diabetes_mlp")
    report = report_of(run_dir)
    test = report["regression"]["test"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert test["rmse"] == pytest.approx(metrics["test/rmse"], rel=1e-4)  # same units as training's metric
    assert test["ci95"]["r2"][0] < test["r2"] < test["ci95"]["r2"][1]
    assert (run_dir / "report" / "regression.png").stat().st_size > 10_000
    conformal = report["conformal"]
    assert conformal["q"] > 0 and json.loads((run_dir / "calibration.json").read_text())["conformal"]["q"] == conformal["q"]
    fairness = report["fairness"]
    assert fairness["attribute"] == "age" and fairness["rmse_gap"] >= 0 and len(fairness["groups"]) == 2
    perm = report["explanations"]["permutation_importance"]
    assert set(perm["columns"]) == {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}
    assert perm["ranking"][0] in ("bmi", "s5")  # the two strongest predictors of the diabetes data
    assert report["explanations"]["attributions"]["method"] == "captum.attr.FeatureAblation"
    baselines = report["baselines"]
    assert set(baselines["models"]) == {"linear", "random_forest", "xgboost", "lightgbm"}
    best = baselines["models"][baselines["best"]]
    assert baselines["margin"]["r2"] == pytest.approx(test["r2"] - best["r2"])
    # success.metric can require beating the best baseline
    beat = verdict(report, "test/baseline_margin_r2", 0.0, "max")
    assert beat["verdict"] == ("PASS" if baselines["margin"]["r2"] >= 0 else "FAIL")
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert "RMSE" in card and "Prediction intervals" in card


def test_penguins_report_has_tabular_baselines(tabular_run):
    report = report_of(tabular_run("tabular_penguins_mlp"))
    assert set(report["baselines"]["models"]) == {"linear", "random_forest", "xgboost", "lightgbm"}
    assert report["fairness"]["attribute"] == "island"
    assert "permutation_importance" in report["explanations"]



def test_baselines_models_and_metric_are_read_for_a_table(tabular_run, tmp_path):
    """baselines.models / baselines.metric used to be ignored for tabular runs (always four models, judged on R²)."""
    import shutil

    from core.errors import ConfigError
    from evaluation.tasks.regression import _baselines

    run_dir = tmp_path / "run"
    shutil.copytree(tabular_run("tabular_diabetes_mlp"), run_dir)  # the session fixture's report stays as it is
    run_entry("evaluate.py", f"run_dir={run_dir}", "baselines.models=[linear,xgboost]", "baselines.metric=rmse",
              "fairness.enabled=false", "explanations.enabled=false", "model_card=false", check=False)
    baselines = report_of(run_dir)["baselines"]
    assert set(baselines["models"]) == {"linear", "xgboost"} and baselines["metric"] == "rmse"
    assert baselines["best"] == min(baselines["models"], key=lambda n: baselines["models"][n]["rmse"])
    with pytest.raises(ConfigError, match="baselines.metric='accuracy': a regression run is judged on one of"):
        _baselines(None, {}, None, "accuracy")

def test_conformal_coverage_within_five_points(tmp_path):
    """A 1500-row synthetic table (heteroscedastic noise): test coverage of the 90% interval is 85-95%."""
    generator = np.random.default_rng(0)
    n = 1500
    x = generator.normal(size=(n, 3))
    kind = generator.choice(["a", "b", "c"], size=n)
    y = 3 * x[:, 0] - 2 * x[:, 1] + (kind == "b") * 2 + generator.normal(scale=1 + 0.5 * np.abs(x[:, 2]), size=n)
    lines = ["x0,x1,x2,kind,y"] + [f"{a:.5f},{b:.5f},{c:.5f},{k},{t:.5f}" for (a, b, c), k, t in zip(x, kind, y)]
    (tmp_path / "synth.csv").write_text("\n".join(lines) + "\n")
    run_entry("train.py", "datamodule=tabular", "model=tabular_mlp", f"datamodule.train_file={tmp_path / 'synth.csv'}",
              "datamodule.target=y", "trainer.max_epochs=4", "datamodule.batch_size=128", f"paths.output_root={tmp_path}",
              "name=synth", "run_id=c", "evaluate=true", *QUIET)
    conformal = report_of(tmp_path / "synth" / "c")["conformal"]
    assert conformal["nominal_coverage"] == 0.9 and conformal["test_rows"] == 300
    assert abs(conformal["test_coverage"] - 0.9) <= 0.05, conformal
