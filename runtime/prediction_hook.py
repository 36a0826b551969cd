"""What the handlers do after each batch: per-class/confidence metrics (every request, printed once a second by
prediction_metrics.py) + sampled prediction logs.

Ships inside every `.mar` (in the `runtime/` package). `classifier_base.ClassifierHandler.on_predictions`
calls `PredictionObserver.observe`; nothing here may fail a request (errors are counted and exported
as the `PredictionLogErrors` metric). The metric names and dimensions are declared for TorchServe's
Prometheus mode in `serving/monitoring/metrics.yaml`.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from .prediction_features import image_features, logit_row_features, real_token_ids, text_features
from .prediction_log import PredictionLogger
from .prediction_metrics import PredictionMetrics
from .preprocessing import tokenize

logger = logging.getLogger(__name__)


class PredictionObserver:
    """One per handler: metrics for every answered request, a JSONL record for the sampled ones."""

    def __init__(self, context: Any, kind: str) -> None:
        self.kind = kind
        self.log = PredictionLogger.from_context(context)
        self.metrics = PredictionMetrics(context, self.log.model_version)
        self._reported_errors = 0

    def observe(self, context: Any, inputs: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]],
                logits: torch.Tensor, latency_ms: float, temperature: float = 1.0, tokenizer: Any = None,
                spec: Any = None) -> None:
        """Never raises: a failure here is logged once per batch and counted."""
        try:
            self.metrics.add(predictions)
            picked = [i for i in range(len(inputs)) if self.log.sampled()]
            if picked:
                self._log(picked, inputs, predictions, logits, latency_ms, temperature, tokenizer, spec)
        except Exception:  # noqa: BLE001 - monitoring must never fail a prediction
            logger.exception("prediction monitoring failed for a batch")
            self.log._count("errors")
        self._report_errors(context)

    def _report_errors(self, context: Any) -> None:
        errors = self.log.failures()
        new = errors - self._reported_errors
        metrics = getattr(context, "metrics", None)
        if new > 0 and metrics is not None:
            from ts.metrics.dimension import Dimension

            metrics.add_counter("PredictionLogErrors", new, None, [Dimension("ModelVersion", self.log.model_version)])
            self._reported_errors = errors

    def _log(self, picked: list[int], inputs: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]],
             logits: torch.Tensor, latency_ms: float, temperature: float, tokenizer: Any, spec: Any) -> None:
        all_rows = logits.tolist()
        rows = [logit_row_features(all_rows[i], temperature) for i in picked]
        token_rows: list[list[int]] = []
        if self.kind == "text":
            texts = [inputs[i]["raw"] for i in picked]
            enc = tokenize(texts, tokenizer, spec)  # exactly as the model saw them
            token_rows = [real_token_ids(ids, m) for ids, m in zip(enc["input_ids"], enc["attention_mask"])]
        for n, i in enumerate(picked):
            raw = inputs[i]["raw"]
            if self.kind == "image":
                feats, text = image_features(raw), None
            else:
                feats, text = text_features(raw, token_rows[n], getattr(tokenizer, "unk_token_id", None)), raw
            pred = predictions[i]
            self.log.log(self.kind, {**feats, **rows[n]}, pred["label"], pred["probability"], latency_ms, text=text,
                         extra={"request_id": inputs[i].get("request_id")})
