"""Issue 16 point 2: drift reference confidences go through the calibration temperature serving applies."""
from __future__ import annotations

from core.atomic import atomic_write_json
from serving.monitoring.reference import load_reference
from tests.exported_runs import copy_run


def test_reference_confidence_uses_calibration_temperature(exported_digits, tmp_path):
    run = copy_run(exported_digits.run_dir, tmp_path)
    raw = load_reference(run)["columns"]["confidence"]
    atomic_write_json(run / "calibration.json", {"temperature": 0.3})
    calibrated = load_reference(run)  # the cache was built at T=1: rebuilt for the new temperature
    assert calibrated["temperature"] == 0.3
    sharper = calibrated["columns"]["confidence"]
    assert all(c >= r - 1e-9 for c, r in zip(sharper, raw)) and sum(sharper) > sum(raw) + 1e-3
