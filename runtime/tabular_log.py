"""Sampled prediction logs of tabular models: per-column summary features, one JSONL record per row.

Each record's "features" holds the row's numeric columns as numbers and categorical columns as their
category (missing cells are left out), so `python -m serving monitor` compares every column with the
training reference (KS + PSI for numbers, chi² + PSI for categories). Settings come from the same
environment variables as the other handlers' logs: SHIPYARD_PREDLOG_DIR (default $LOG_LOCATION/predictions;
neither: off), SHIPYARD_PREDLOG_RATE (0..1, default 0.1), SHIPYARD_PREDLOG_ENABLED.
Logging never fails a request: errors are counted in `errors`.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any

from .tabular import RowError, TabularSpec, parse_category, parse_number


def row_features(row: dict[str, Any], spec: TabularSpec) -> dict[str, Any]:
    """A row's feature values as the monitor compares them (numbers as floats, categories as strings)."""
    out: dict[str, Any] = {}
    for col in spec.numeric:
        value = row.get(col.name)
        try:
            if value is not None and not (isinstance(value, str) and not value.strip()):
                out[col.name] = parse_number(col.name, value)
        except RowError:
            pass
    for cat in spec.categorical:
        value = row.get(cat.name)
        try:
            if value is not None and not (isinstance(value, str) and not value.strip()):
                out[cat.name] = parse_category(cat.name, value)
        except RowError:
            pass
    return out


class TabularPredictionLog:
    """Appends sampled records to <folder>/<model>.jsonl (one lock per process)."""

    def __init__(self, spec: TabularSpec, model_name: str, folder: str, sample_rate: float) -> None:
        self.spec = spec
        self.model_name = model_name or "model"
        self.folder = folder
        self.sample_rate = sample_rate
        self.errors = 0
        self._lock = threading.Lock()
        self._random = random.Random()

    @classmethod
    def from_environment(cls, spec: TabularSpec, model_name: str) -> "TabularPredictionLog | None":
        """The log the environment asks for, or None when logging is off."""
        if os.environ.get("SHIPYARD_PREDLOG_ENABLED", "true").lower() in ("0", "false", "no"):
            return None
        folder = os.environ.get("SHIPYARD_PREDLOG_DIR") or (
            os.path.join(os.environ["LOG_LOCATION"], "predictions") if os.environ.get("LOG_LOCATION") else "")
        if not folder:
            return None
        rate = float(os.environ.get("SHIPYARD_PREDLOG_RATE", "0.1"))
        return cls(spec, model_name, folder, min(max(rate, 0.0), 1.0))

    def record(self, rows: list[dict[str, Any]], answers: list[dict[str, Any]]) -> None:
        """Log a sample of (row, answer) pairs; never raises."""
        try:
            lines = []
            for row, answer in zip(rows, answers):
                if self._random.random() >= self.sample_rate:
                    continue
                prediction = {"label": answer.get("label"), "confidence": answer.get("probability"),
                              "value": answer.get("prediction")}
                lines.append(json.dumps({"ts": time.time(), "model": self.model_name, "kind": "tabular",
                                         "features": row_features(row, self.spec), "prediction": prediction},
                                        allow_nan=False))
            if not lines:
                return
            os.makedirs(self.folder, exist_ok=True)
            with self._lock, open(os.path.join(self.folder, f"{self.model_name}.jsonl"), "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        except Exception:  # noqa: BLE001 - a logging failure must never fail a prediction
            self.errors += 1
