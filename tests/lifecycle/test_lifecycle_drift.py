"""Drift detection: planted covariate and label shifts are caught; no-drift alarms stay at or below alpha."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from serving.monitoring.drift import DriftThresholds, compare_categorical, compare_numeric, psi_numeric
from tests.lifecycle.cli import serving_cli
from tests.lifecycle.drift_sim import darken, feature_table, simulate

ALPHA = 0.05
REPS = 200


def test_ks_and_chi2_come_from_scipy_and_psi_is_zero_for_equal_samples():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=400), rng.normal(size=400)
    th = DriftThresholds()
    same = compare_numeric("x", a, a, th)
    assert same.p_value == 1.0 and same.psi == pytest.approx(0.0, abs=1e-9)
    moved = compare_numeric("x", a, b + 1.0, th)
    assert moved.p_value < 1e-10 and moved.psi > 0.5 and moved.test == "ks_2samp"
    cat = compare_categorical("c", ["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10, th)
    assert cat.test == "chi2_contingency" and cat.p_value < 1e-6
    assert psi_numeric(np.ones(10), np.ones(10)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="alpha"):
        DriftThresholds(alpha=1.5)


@pytest.mark.slow
def test_detection_and_false_alarm_rates(exported_digits, tmp_path):
    rates = simulate(exported_digits.run_dir, reps=REPS, th=DriftThresholds(alpha=ALPHA))
    (tmp_path / "rates.json").write_text(json.dumps(rates))
    print(f"\ndrift rates over {REPS} repetitions (n_ref=150, n_cur=60, alpha={ALPHA}): {rates}")
    # the whole report's false-alarm rate is bounded by alpha (Bonferroni); allow 3 binomial s.e. of noise
    assert rates["none"] <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS), rates
    assert rates["covariate"] >= 0.95, rates
    assert rates["label"] >= 0.95, rates


def _write_logs(folder, cols, n, offset=0):
    """Prediction-log records (the handler's JSONL format) from feature columns."""
    from runtime.prediction_log import PredictionLogger, PredictionLogSettings

    logger = PredictionLogger(PredictionLogSettings(sample_rate=1.0, folder=str(folder)), "digits_cnn", "1.0")
    feats = [k for k in cols if k != "prediction"]
    for i in range(offset, offset + n):
        logger.log("image", {k: cols[k][i] for k in feats}, cols["prediction"][i], cols["confidence"][i], 3.0)
    logger.flush()
    logger.close()
    assert logger.stats()["written"] == n and logger.stats()["errors"] == 0


@pytest.mark.slow
def test_monitor_cli_reports_and_exits_nonzero_on_drift(exported_digits, tmp_path):
    from datamodules.digits import digits_images

    images, _ = digits_images()
    test_ids = json.loads((exported_digits.run_dir / "data" / "splits.json").read_text())["test"]
    held_out = [images[int(i.split("/")[1])] for i in test_ids][:120]
    _write_logs(tmp_path / "calm", feature_table(exported_digits.run_dir, held_out), 120)
    _write_logs(tmp_path / "shifted", feature_table(exported_digits.run_dir, [darken(im) for im in held_out]), 120)
    ok = serving_cli("monitor", f"reference={exported_digits.run_dir}", f"current={tmp_path / 'calm'}",
                   f"out={tmp_path / 'calm_report'}", check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # drift → exit 3, report, textfile metric, and retrain: train.py for the run's experiment as a Slurm job
    # (dry run: the rendered sbatch script lands in the report folder's retrain.log)
    bad = serving_cli("monitor", f"reference={exported_digits.run_dir}", f"current={tmp_path / 'shifted'}",
                      f"out={tmp_path / 'shift_report'}", f"textfile_dir={tmp_path / 'textfile'}",
                      "retrain_on_drift=true", "retrain.launcher=slurm",
                      f'retrain.overrides=["slurm.dry_run=true","paths.output_root={tmp_path / "retrain"}"]',
                      check=False)
    assert bad.returncode == 3 and "retrain launched" in bad.stdout, bad.stdout + bad.stderr
    report = json.loads((tmp_path / "shift_report" / "drift_report.json").read_text())
    assert report["drifted"] and {"brightness", "contrast"} <= set(report["drifted_features"])
    assert (tmp_path / "shift_report" / "drift_features.png").stat().st_size > 1000
    assert "DRIFT" in (tmp_path / "shift_report" / "drift_report.md").read_text()
    prom = (tmp_path / "textfile" / "shipyard_drift.prom").read_text()
    assert 'shipyard_drift_detected{model="all"} 1' in prom
    script = (tmp_path / "shift_report" / "retrain.log").read_text()
    assert "#SBATCH" in script and "+experiment=digits_cnn" in script
    from serving.monitoring.monitor import compose

    with pytest.raises(ValueError, match="alpah"):
        compose(["reference=x", "current=y", "thresholds.alpah=0.1"])
