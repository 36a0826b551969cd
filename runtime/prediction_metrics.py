"""The handlers' per-prediction metrics, printed once a second instead of once per request.

Ships inside every `.mar` (in the `runtime/` package). TorchServe's frontend reads every line a worker
prints and parses the `[METRICS]` ones into Prometheus. Through `context.metrics` each observation is one
log record (validation, LogRecord, `socket.gethostname()`, a flush): 2 lines per unbatched request were
0.16 ms of the worker's ~1 ms in-process CPU per request (benchmarks/results/PROFILE.md, serving).
Here the counters are summed per label and the confidences gathered, and a daemon thread prints them
every `interval` s: the per-label counts as counters through TorchServe's own API, the histogram's
observations (one line each, the frontend observes one value per line) as one log record in TorchServe
0.12's line format. Prometheus scrapes every 15 s or more, so a 1 s delay changes no figure.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from typing import Any, Sequence

logger = logging.getLogger(__name__)
# the logger TorchServe's own metric lines go through (ts/metrics/caching_metric.py): same handlers, same level
TS_METRICS_LOGGER = logging.getLogger("ts.metrics.caching_metric")


class PredictionMetrics:
    """`add(predictions)` per batch (cheap, under a lock); `flush()` prints what was gathered."""

    def __init__(self, context: Any, model_version: str, interval: float = 1.0) -> None:
        self.metrics = getattr(context, "metrics", None)
        self.model_name = getattr(context, "model_name", "") or ""
        self.model_version = model_version
        self.interval = interval
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._confidences: list[float] = []
        self._host = socket.gethostname()
        self._thread: threading.Thread | None = None

    def add(self, predictions: Sequence[dict[str, Any]]) -> None:
        """Gather one batch's labels and confidences; the flusher thread prints them."""
        if self.metrics is None:
            return
        with self._lock:
            for p in predictions:
                self._counts[str(p["label"])] += 1
                self._confidences.append(float(p["probability"]))
        if self._thread is None:  # started on first use: a worker that never predicts runs no thread
            self._thread = threading.Thread(target=self._run, name="prediction-metrics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - monitoring must never kill the worker; the next second retries
                logger.exception("printing the prediction metrics failed")

    def flush(self) -> None:
        """Print the gathered counts (one counter line per label) and confidences (one histogram line each)."""
        with self._lock:
            counts, confidences = self._counts, self._confidences
            self._counts, self._confidences = Counter(), []
        if self.metrics is None or not (counts or confidences):
            return
        from ts.metrics.dimension import Dimension

        # every dimension named (metrics.yaml's order): add_counter's defaults would depend on the request
        # ids of whichever batch ran last, and this runs on the flusher thread
        own = [Dimension("ModelVersion", self.model_version), Dimension("ModelName", self.model_name),
               Dimension("Level", "Model")]
        for label, n in counts.items():
            self.metrics.add_counter("PredictionsPerClass", n, None, [Dimension("Label", label), *own])
        if confidences:
            # ts 0.12's CachingMetric.emit_metrics line, with the default dimensions add_metric appends
            dims = f"ModelVersion:{self.model_version},ModelName:{self.model_name},Level:Model"
            tail = f"|#{dims}|#type:HISTOGRAM|#hostname:{self._host},{int(time.time())}"
            TS_METRICS_LOGGER.info("\n".join(f"[METRICS]PredictionConfidence.ratio:{c}{tail}" for c in confidences))
