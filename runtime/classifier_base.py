"""The base class of Shipyard's TorchServe handlers: per-request validation, one forward per batch.

Ships inside every `.mar` in the `runtime/` package; the handler files hold exactly one
class each (TorchServe's rule) that picks the decoding and batching functions for its input kind.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

import torch

from . import classifier_io, model_loading
from .answers import finish_answers
from .prediction_hook import PredictionObserver

logger = logging.getLogger(__name__)


def _header(context: Any, idx: int, name: str) -> str | None:
    """A request header as TorchServe passes it (its case as sent; in-process tests have none)."""
    try:
        for key in (name, name.lower()):
            value = context.get_request_header(idx, key)
            if value:
                return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
    except (AttributeError, IndexError, KeyError, TypeError):
        pass
    return None


class ClassifierHandler:
    """TorchServe entry point: `initialize(context)` once per worker, `handle(data, context)` per batch."""

    kind = ""  # "image" or "text", set by the subclass

    def __init__(self) -> None:
        self.initialized = False
        self.model: Any = None
        self.spec: classifier_io.PreprocessSpec | None = None
        self.device = torch.device("cpu")
        self.model_name = ""
        self.observer: PredictionObserver | None = None
        self._context: Any = None
        self._batch_started = 0.0

    # ---------------------------------------------------------------- subclass API
    def decode(self, request: Any) -> classifier_io.Decoded:
        """One request → validated model item (raise BadInputError for a bad request)."""
        raise NotImplementedError

    def collate(self, values: list[Any]) -> dict[str, torch.Tensor]:
        """Validated items → the net's inputs for one forward."""
        raise NotImplementedError

    def load_extras(self, model_dir: str) -> None:
        """Anything besides model + spec (the text handler loads its tokenizer here)."""

    # ---------------------------------------------------------------- TorchServe API
    def initialize(self, context: Any) -> None:
        """Load the spec and TorchScript model from the extracted archive folder."""
        properties = context.system_properties
        model_dir = properties.get("model_dir")
        self.model_name = getattr(context, "model_name", "") or ""
        self.device = model_loading.device_for(context)
        self.spec = model_loading.load_spec(model_dir)
        model_loading.apply_limits(self.spec, getattr(context, "model_yaml_config", None) or {})
        if self.spec.kind != self.kind:
            raise ValueError(f"{type(self).__name__} serves {self.kind} models, but preprocess.json says "
                             f"kind={self.spec.kind!r}: package the model with the {self.spec.kind} handler")
        self.model = model_loading.load_model(model_dir, self.device)
        self.load_extras(model_dir)
        self.observer = PredictionObserver(context, self.kind)  # metrics + sampled prediction logs
        self.initialized = True
        logger.info("%s: %s model loaded from %s on %s", type(self).__name__, self.kind, model_dir, self.device)

    def handle(self, data: list[Any], context: Any) -> list[str]:
        """Validate each request on its own, run one forward over the good ones, answer every request."""
        self._batch_started, self._context = time.perf_counter(), context
        answers: list[Any] = [None] * len(data)
        good: list[tuple[int, classifier_io.Decoded]] = []
        for idx, request in enumerate(data):
            try:
                classifier_io.check_content_type(request, _header(context, idx, "Content-Type"))
                good.append((idx, self.decode(request)))
            except classifier_io.BadInputError as err:
                answers[idx] = self._refuse(context, idx, err.status, classifier_io.error_body(err))
            except Exception as err:  # noqa: BLE001 - a bug on one odd input must not fail its neighbours
                logger.exception("preprocessing request %d failed", idx)
                answers[idx] = self._refuse(context, idx, 500, {"error": f"internal error while preprocessing: "
                                                                f"{type(err).__name__}: {err}", "code": "internal"})
        if good:
            logits = classifier_io.predict_batch(self.model, self.collate([d.value for _, d in good]), self.device)
            predictions = classifier_io.format_predictions(logits, self.spec, [d.top_k for _, d in good])
            for (idx, _), prediction in zip(good, predictions):
                answers[idx] = classifier_io.answer_json(prediction)
            self.on_predictions(self._summaries(good, context), predictions, logits)
        finish_answers(context, len(data))
        return answers

    def on_predictions(self, inputs: list[dict[str, Any]], predictions: list[dict[str, Any]],
                       logits: torch.Tensor) -> None:
        """Hook called once per batch with the good requests' summaries and answers (prediction logging)."""
        if self.observer is not None:
            latency_ms = (time.perf_counter() - self._batch_started) * 1000.0
            self.observer.observe(self._context, inputs, predictions, logits, latency_ms, self.spec.temperature,
                                  getattr(self, "tokenizer", None), self.spec)

    # ---------------------------------------------------------------- helpers
    def _summaries(self, good: list[tuple[int, classifier_io.Decoded]], context: Any) -> list[dict[str, Any]]:
        ids = getattr(context, "request_ids", None) or {}
        return [{"index": idx, "request_id": ids.get(idx), "kind": self.kind, "raw": d.raw} for idx, d in good]

    @staticmethod
    def _refuse(context: Any, idx: int, status: int, body: dict[str, Any]) -> str:
        # the reason phrase travels in the HTTP status line: keep it ASCII and short; the body has it all
        phrase = body["error"].encode("ascii", "backslashreplace").decode()[:200]
        context.set_response_status(status, phrase, idx)
        return json.dumps(body)

