"""Sampled prediction logging for the handlers: summary features + prediction → rotating JSONL files.

Ships inside every `.mar` (in the `runtime/` package), so it imports only the
standard library and its siblings. A request is never blocked or failed by logging: records go
through a bounded in-memory buffer to a writer thread (`line_writer.RotatingLineWriter`); a full
buffer or an I/O error is counted (`stats()`, and the `PredictionLogErrors` metric), not raised.
Text is PII-redacted before it is queued, so an unredacted text never reaches a file.

Settings (the archive's model-config YAML `prediction_log:` section; environment variables win):
  enabled / SHIPYARD_PREDLOG_ENABLED, sample_rate / SHIPYARD_PREDLOG_RATE (0..1),
  folder / SHIPYARD_PREDLOG_DIR (default: $LOG_LOCATION/predictions, TorchServe's log folder; neither: off),
  max_bytes / SHIPYARD_PREDLOG_MAX_BYTES, backup_count / SHIPYARD_PREDLOG_BACKUPS, queue_size, max_text_chars.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .line_writer import RotatingLineWriter
from .pii import redact
from .prediction_features import finite

ENV = {"enabled": "SHIPYARD_PREDLOG_ENABLED", "sample_rate": "SHIPYARD_PREDLOG_RATE",
       "folder": "SHIPYARD_PREDLOG_DIR", "max_bytes": "SHIPYARD_PREDLOG_MAX_BYTES",
       "backup_count": "SHIPYARD_PREDLOG_BACKUPS"}


@dataclass
class PredictionLogSettings:
    """How much is logged, where, and how files rotate."""

    enabled: bool = True
    sample_rate: float = 0.1
    folder: str = ""
    max_bytes: int = 10_000_000
    backup_count: int = 5
    queue_size: int = 10_000
    max_text_chars: int = 2_000

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.sample_rate) <= 1.0:
            raise ValueError(f"prediction_log.sample_rate={self.sample_rate}: must be within [0, 1]")
        if int(self.max_bytes) < 1024:
            raise ValueError(f"prediction_log.max_bytes={self.max_bytes}: use at least 1024 bytes")

    @classmethod
    def resolve(cls, section: dict[str, Any] | None, environ: dict[str, str] | None = None) -> "PredictionLogSettings":
        """Archive config section, then environment overrides; unknown keys are an error."""
        environ = os.environ if environ is None else environ
        data = dict(section or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown prediction_log keys {sorted(unknown)}; known: {sorted(known)}")
        for key, var in ENV.items():
            if environ.get(var, "") != "":
                data[key] = environ[var]
        casts = {"enabled": _as_bool, "sample_rate": float, "folder": str, "max_bytes": int, "backup_count": int,
                 "queue_size": int, "max_text_chars": int}
        data = {k: casts[k](v) for k, v in data.items()}
        if not data.get("folder"):
            if not environ.get("LOG_LOCATION"):
                data["enabled"] = False  # no folder named anywhere: log nothing rather than litter the cwd
            data["folder"] = str(Path(environ.get("LOG_LOCATION") or ".") / "predictions")
        return cls(**data)


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


class PredictionLogger:
    """One per handler instance: `sampled()` per request, then `log(...)` for the sampled ones."""

    _serial = 0

    def __init__(self, settings: PredictionLogSettings, model_name: str, model_version: str,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.model_name = model_name
        self.model_version = str(model_version)
        self.rng = rng or random.Random()
        self._counts = {"sampled": 0, "errors": 0}
        self._lock = threading.Lock()
        self._writer: RotatingLineWriter | None = None
        self.path = Path(settings.folder) / f"{_safe(model_name)}-{_safe(self.model_version)}-{os.getpid()}.jsonl"
        if settings.enabled and settings.sample_rate > 0:
            self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            self._count("errors")
            self.settings.enabled = False  # an unwritable folder: serve on, report the error count
            return
        self._writer = RotatingLineWriter(self.path, self.settings.max_bytes, self.settings.backup_count,
                                          self.settings.queue_size)

    @classmethod
    def from_context(cls, context: Any) -> "PredictionLogger":
        """Settings from the archive's model-config YAML + environment; name/version from the manifest."""
        yaml_config = getattr(context, "model_yaml_config", None) or {}
        settings = PredictionLogSettings.resolve(yaml_config.get("prediction_log"))
        manifest = getattr(context, "manifest", None) or {}
        version = manifest.get("model", {}).get("modelVersion", "unknown")
        return cls(settings, getattr(context, "model_name", None) or "model", version)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def sampled(self) -> bool:
        """Whether this request is logged (Bernoulli with the configured rate)."""
        writer = self._writer
        return (writer is not None and not writer.closed and self.settings.enabled
                and self.rng.random() < self.settings.sample_rate)

    def log(self, kind: str, features: dict[str, Any], label: str, confidence: float, latency_ms: float,
            text: str | None = None, extra: dict[str, Any] | None = None) -> None:
        """Queue one record; never raises (failures are counted)."""
        writer = self._writer
        if writer is None:  # logging is off (or its folder could not be made: counted at start)
            return
        try:
            record: dict[str, Any] = {
                "ts": time.time(), "model": self.model_name, "version": self.model_version, "kind": kind,
                "features": finite(features), "prediction": {"label": label, "confidence": float(confidence)},
                "latency_ms": round(float(latency_ms), 3), **(extra or {}),
            }
            if text is not None:
                record["text"] = redact(text[: self.settings.max_text_chars])
            line = json.dumps(record, ensure_ascii=False, allow_nan=False)
        except Exception:  # a bad feature value must not fail the request
            self._count("errors")
            return
        self._count("sampled")
        writer.append(line)

    def stats(self) -> dict[str, int]:
        """Counts so far: sampled, written, dropped (buffer full), errors (I/O or encoding)."""
        with self._lock:
            counts = dict(self._counts)
        writer = self._writer
        if writer is None:
            return {**counts, "written": 0, "dropped": 0}
        return {**counts, "written": writer.written, "dropped": writer.dropped,
                "errors": counts["errors"] + writer.errors}

    def failures(self) -> int:
        """Records that did not reach the file: errors + dropped (read once per batch, so no copies)."""
        writer = self._writer
        return self._counts["errors"] + (writer.errors + writer.dropped if writer is not None else 0)

    def flush(self) -> None:
        """Write every queued record now (tests, shutdown)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Write what is queued and stop the writer thread (nothing is sampled afterwards)."""
        if self._writer is not None:
            self._writer.close()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(name)) or "model"
