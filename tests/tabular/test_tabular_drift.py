"""Per-column drift for tabular models: the handler's log features vs the run's reference, planted shift found."""
from __future__ import annotations

import json

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from runtime.tabular import TabularSpec
from runtime.tabular_log import TabularPredictionLog
from serving.monitoring.monitor import MonitorConfig, check_drift


def test_planted_drift_in_one_column_is_detected_and_no_other(tabular_run, tmp_path):
    run_dir = tabular_run("tabular_diabetes_mlp")
    spec = TabularSpec.from_dict(json.loads((run_dir / "preprocess.json").read_text())["tabular"])
    dm = instantiate(OmegaConf.load(run_dir / "config.yaml").datamodule)
    dm.setup()
    train = dm.split_rows("train")  # the same population as the val reference
    picks = [train[i] for i in np.random.default_rng(0).integers(0, len(train), 400)]
    shifted = [{**row, "bmi": float(row["bmi"]) + 8.0} for row in picks]  # ~2 standard deviations
    log = TabularPredictionLog(spec, "tabular_diabetes_mlp", str(tmp_path / "logs"), sample_rate=1.0)
    log.record(shifted, [{"prediction": 0.0} for _ in shifted])
    assert log.errors == 0
    result, files, _ = check_drift(MonitorConfig(reference=str(run_dir), current=str(tmp_path / "logs"),
                                                 out=str(tmp_path / "report")))
    report = json.loads(files["json"].read_text())
    assert report["drifted_features"] == ["bmi"], [(f["name"], f["p_value"], f["psi"]) for f in report["features"]]
    assert {f["name"] for f in report["features"]} == set(spec.feature_names)
    assert {f["test"] for f in report["features"]} == {"ks_2samp"} and result.drifted
