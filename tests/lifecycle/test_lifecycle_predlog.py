"""Prediction logs: sampling, size rotation, I/O errors counted (never raised), planted PII never written."""
from __future__ import annotations

import json
import random

import pytest
from scipy.stats import binomtest

from runtime.prediction_log import PredictionLogger, PredictionLogSettings

FEATURES = {"brightness": 0.3, "contrast": 0.2, "width": 8.0, "height": 8.0, "confidence": 0.9}


def _logger(tmp_path, **kw) -> PredictionLogger:
    return PredictionLogger(PredictionLogSettings(folder=str(tmp_path / "logs"), **kw), "m", "1.0",
                            rng=random.Random(0))


def test_sample_rate_is_respected(tmp_path):
    log = _logger(tmp_path, sample_rate=0.3)
    hits = sum(log.sampled() for _ in range(2000))
    assert binomtest(hits, 2000, 0.3).pvalue > 0.001, hits
    log.close()
    off = _logger(tmp_path, sample_rate=0.0)
    assert not any(off.sampled() for _ in range(100))


def test_size_rotation_keeps_backup_count_files(tmp_path):
    log = _logger(tmp_path, sample_rate=1.0, max_bytes=2048, backup_count=3)
    for i in range(200):
        log.log("image", FEATURES, str(i % 10), 0.9, 1.0)
    log.flush()
    log.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert len(files) == 4 and any(f.endswith(".jsonl.3") for f in files), files
    for path in (tmp_path / "logs").iterdir():
        assert path.stat().st_size <= 2048 + 400
        for line in path.read_text().splitlines():
            assert json.loads(line)["model"] == "m"
    assert log.stats()["written"] == 200 and log.stats()["errors"] == 0


def test_io_errors_are_counted_not_raised(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    log = PredictionLogger(PredictionLogSettings(folder=str(blocker / "logs"), sample_rate=1.0), "m", "1.0")
    log.log("image", FEATURES, "1", 0.9, 1.0)  # must not raise
    assert log.stats()["errors"] >= 1 and not log.sampled()
    bad = _logger(tmp_path, sample_rate=1.0)
    bad.log("image", {"x": object()}, "1", 0.9, 1.0)  # unserialisable feature: counted
    bad.close()
    assert bad.stats()["errors"] == 1


def test_settings_come_from_the_archive_config_and_env_wins():
    s = PredictionLogSettings.resolve({"sample_rate": 0.2, "folder": "/x"}, {"SHIPYARD_PREDLOG_RATE": "0.5"})
    assert s.sample_rate == 0.5 and s.folder == "/x"
    assert not PredictionLogSettings.resolve({}, {}).enabled  # no folder known anywhere: off, not ./logs
    with pytest.raises(ValueError, match="unknown prediction_log keys"):
        PredictionLogSettings.resolve({"rate": 1}, {})
    with pytest.raises(ValueError, match="sample_rate"):
        PredictionLogSettings.resolve({}, {"SHIPYARD_PREDLOG_RATE": "2", "SHIPYARD_PREDLOG_DIR": "/x"})


PLANTED = {"email": "jane.doe@example.com", "phone": "+1 415 555 0134", "card": "4111 1111 1111 1111"}


@pytest.mark.slow
def test_planted_pii_never_reaches_the_log_file(exported_text, tmp_path, monkeypatch):
    from serving.torchserve.inprocess import InProcessWorker

    monkeypatch.setenv("SHIPYARD_PREDLOG_DIR", str(tmp_path / "predictions"))
    monkeypatch.setenv("SHIPYARD_PREDLOG_RATE", "1.0")
    worker = InProcessWorker(exported_text.mar, tmp_path / "worker")
    texts = [f"my card {PLANTED['card']} was charged twice, mail {PLANTED['email']}",
             f"call me at {PLANTED['phone']} about the parcel", "the app crashes on login"]
    code, answers = worker.predict([(json.dumps({"text": t}).encode(), "application/json") for t in texts])
    assert code == 200 and all(a.status == 200 for a in answers)
    observer = worker.handler.observer
    observer.log.flush()
    observer.log.close()
    records = [json.loads(line) for p in (tmp_path / "predictions").glob("*.jsonl*") for line in p.read_text().splitlines()]
    assert len(records) == 3, observer.log.stats()
    for path in (tmp_path / "predictions").rglob("*"):
        if path.is_file():
            data = path.read_text()
            for kind, value in PLANTED.items():
                assert value not in data, f"{kind} leaked into {path}"
    joined = " ".join(r["text"] for r in records)
    assert "[EMAIL]" in joined and "[CARD]" in joined and "[PHONE]" in joined
    assert {"char_length", "token_count", "unk_rate", "logit_norm", "confidence"} <= set(records[0]["features"])
    assert records[0]["model"] == exported_text.name and records[0]["version"] == exported_text.version


@pytest.mark.slow
def test_text_drift_is_seen_in_handler_logs(exported_text, tmp_path, monkeypatch):
    """Real handler logs (text features from the archive's own code) against the run's reference."""
    from serving.monitoring.drift import DriftThresholds
    from serving.monitoring.monitor import MonitorConfig, check_drift
    from serving.torchserve.inprocess import InProcessWorker

    monkeypatch.setenv("SHIPYARD_PREDLOG_DIR", str(tmp_path / "predictions"))
    monkeypatch.setenv("SHIPYARD_PREDLOG_RATE", "1.0")
    worker = InProcessWorker(exported_text.mar, tmp_path / "worker")
    rng = random.Random(0)
    # a new client sends long strings of words the model never saw in training
    texts = [" ".join("".join(rng.choice("qxzjkvw") for _ in range(7)) for _ in range(rng.randint(30, 60)))
             for _ in range(40)]
    for start in range(0, len(texts), 8):
        code, _ = worker.predict([(json.dumps({"text": t}).encode(), "application/json") for t in texts[start:start + 8]])
        assert code == 200
    worker.handler.observer.log.flush()
    worker.handler.observer.log.close()
    result, files, _ = check_drift(MonitorConfig(reference=str(exported_text.run_dir), current=str(tmp_path / "predictions"),
                                                 out=str(tmp_path / "report"), thresholds=DriftThresholds()))
    drifted = {f.name for f in result.features if f.drifted}
    assert result.drifted and {"oov_rate", "char_length"} <= drifted, drifted
    assert json.loads(files["json"].read_text())["informational"][0]["name"] == "vocabulary"
