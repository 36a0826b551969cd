"""Alert rules pass `promtool check rules` and their unit tests; the dashboard and drift textfile fit them."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from serving.monitoring.drift import DriftThresholds, compare
from serving.monitoring.report import prometheus_text
from tests.conftest import REPO, require_service

MON = REPO / "serving" / "monitoring"
PROM = MON / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    require_service(shutil.which("promtool") is not None, "promtool missing (apt-get install prometheus)")
    return shutil.which("promtool")


def test_promtool_check_rules(promtool):
    proc = subprocess.run([promtool, "check", "rules", str(PROM / "alerts.yml")], capture_output=True, text=True)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_promtool_unit_tests_fire_and_stay_quiet(promtool):
    proc = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=PROM, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rules_cover_latency_errors_and_drift():
    alerts = {r["alert"] for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]
              if "alert" in r}
    assert {"ShipyardHighInferenceLatency", "ShipyardHighErrorRate", "ShipyardDriftDetected"} <= alerts


def test_drift_textfile_is_valid_exposition(promtool):
    import numpy as np

    rng = np.random.default_rng(0)
    col = {"x": list(rng.normal(size=100)), "prediction": ["a"] * 100}
    text = prometheus_text(compare(col, col, ["x"], ["prediction"], DriftThresholds()), 'digits "v1"')
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'shipyard_drift_detected{model="digits \\"v1\\""} 0' in text


def test_dashboard_queries_only_known_metrics():
    dash = json.loads((MON / "grafana_dashboard.json").read_text())
    declared = set(re.findall(r"name: (\w+)", (MON / "metrics.yaml").read_text()))
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    exprs = [re.sub(r"by\s*\([^)]*\)", "", t["expr"]) for p in dash["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\b([A-Za-z_:][\w:]*)\b(?=\s*[\[{)]|$)", e)}
    known = declared | recorded | {"shipyard_drift_score", "shipyard_drift_detected"}
    funcs = {"rate", "sum", "by", "histogram_quantile", "increase", "le"}
    suffixed = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names - funcs}
    assert suffixed <= known, suffixed - known
