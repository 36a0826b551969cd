"""Sampled prediction logging for the handlers: summary features + prediction → rotating JSONL files.

Ships inside every `.mar` (in the `runtime/` package), so it imports only the
standard library and its two siblings. A request is never blocked or failed by logging: records go
through a bounded in-memory queue to a writer thread (stdlib QueueHandler/QueueListener); a full
queue or an I/O error is counted (`stats()`, and the `PredictionLogErrors` metric), not raised.
Text is PII-redacted before it is queued, so an unredacted text never reaches a file.

Settings (the archive's model-config YAML `prediction_log:` section; environment variables win):
  enabled / SHIPYARD_PREDLOG_ENABLED, sample_rate / SHIPYARD_PREDLOG_RATE (0..1),
  folder / SHIPYARD_PREDLOG_DIR (default: $LOG_LOCATION/predictions, TorchServe's log folder; neither: off),
  max_bytes / SHIPYARD_PREDLOG_MAX_BYTES, backup_count / SHIPYARD_PREDLOG_BACKUPS, queue_size, max_text_chars.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
import random
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

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


class _CountingRotatingHandler(logging.handlers.RotatingFileHandler):
    """Size-rotated file whose write errors are counted instead of printed."""

    def __init__(self, owner: "PredictionLogger", *args: Any, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(*args, **kwargs)

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if not getattr(record, "_failed", False):
            self.owner._count("written")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (stdlib name)
        record._failed = True  # type: ignore[attr-defined]
        self.owner._count("errors")


class _CountingQueueHandler(logging.handlers.QueueHandler):
    """put_nowait on a bounded queue: a full queue drops the record and counts it."""

    def __init__(self, owner: "PredictionLogger", q: queue.Queue) -> None:
        self.owner = owner
        super().__init__(q)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # the message is already a JSON line; skip stdlib's re-formatting

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
        self.owner._count("dropped")


class PredictionLogger:
    """One per handler instance: `sampled()` per request, then `log(...)` for the sampled ones."""

    _serial = 0

    def __init__(self, settings: PredictionLogSettings, model_name: str, model_version: str,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.model_name = model_name
        self.model_version = str(model_version)
        self.rng = rng or random.Random()
        self._counts = {"sampled": 0, "written": 0, "dropped": 0, "errors": 0}
        self._lock = threading.Lock()
        self._listener: logging.handlers.QueueListener | None = None
        self.path = Path(settings.folder) / f"{_safe(model_name)}-{_safe(self.model_version)}-{os.getpid()}.jsonl"
        if settings.enabled and settings.sample_rate > 0:
            self._open()

    def _open(self) -> None:
        PredictionLogger._serial += 1
        self._logger = logging.getLogger(f"shipyard.predlog.{os.getpid()}.{PredictionLogger._serial}")
        self._logger.propagate = False  # never into TorchServe's model_log
        self._logger.setLevel(logging.INFO)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file_handler = _CountingRotatingHandler(self, self.path, maxBytes=self.settings.max_bytes,
                                                    backupCount=self.settings.backup_count, encoding="utf-8",
                                                    delay=True)
        except OSError:
            self._count("errors")
            self.settings.enabled = False  # an unwritable folder: serve on, report the error count
            return
        file_handler.setFormatter(logging.Formatter("%(message)s"))
        q: queue.Queue = queue.Queue(maxsize=self.settings.queue_size)
        self._logger.addHandler(_CountingQueueHandler(self, q))
        self._listener = logging.handlers.QueueListener(q, file_handler)
        self._listener.start()

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
        return bool(self._listener) and self.settings.enabled and self.rng.random() < self.settings.sample_rate

    def log(self, kind: str, features: dict[str, Any], label: str, confidence: float, latency_ms: float,
            text: str | None = None, extra: dict[str, Any] | None = None) -> None:
        """Queue one record; never raises (failures are counted)."""
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
        self._logger.info(line)

    def stats(self) -> dict[str, int]:
        """Counts so far: sampled, written, dropped (queue full), errors (I/O or encoding)."""
        with self._lock:
            return dict(self._counts)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the queue is written (tests, shutdown)."""
        if self._listener is None:
            return
        deadline = time.monotonic() + timeout
        while not self._listener.queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.02)  # the record being written when the queue emptied

    def close(self) -> None:
        """Flush and stop the writer thread."""
        if self._listener is not None:
            self._listener.stop()
            for handler in self._listener.handlers:
                handler.close()
            self._listener = None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(name)) or "model"
