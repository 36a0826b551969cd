"""TorchServe handler for Shipyard tabular models: {"rows": [...]} or one row object → one answer per row.

Regression: [{"prediction", "interval"}]; classification: [{"label", "probability", "top_k"}]. Every row
is validated on its own (runtime/tabular.py): a request whose rows are all bad gets a 4xx naming the
row and column; a request with some bad rows is answered 200 with an {"error", "column", "row"} entry
in place of each bad row, so the rest of the batch is answered. All rows of all requests in a dynamic
batch go through one forward. One class in this file (TorchServe's rule).
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import torch

from ..answers import finish_answers
from ..model_loading import load_model
from ..preprocessing import SPEC_FILENAME
from ..tabular import TabularSpec, encode_rows
from ..tabular_io import RequestError, decode_request, error_answer, predictions_from_outputs
from ..tabular_log import TabularPredictionLog

logger = logging.getLogger(__name__)


class TabularHandler:
    """`initialize(context)` once per worker, `handle(data, context)` per dynamic batch."""

    def __init__(self) -> None:
        self.initialized = False
        self.model: Any = None
        self.spec: TabularSpec | None = None
        self.temperature = 1.0
        self.unknown_categories: dict[str, int] = {}  # per column, since start (also a TorchServe metric)
        self.log: TabularPredictionLog | None = None

    def initialize(self, context: Any) -> None:
        """Load preprocess.json (kind tabular) and the TorchScript model from the archive folder."""
        model_dir = context.system_properties.get("model_dir")
        with open(os.path.join(model_dir, SPEC_FILENAME), encoding="utf-8") as f:
            spec = json.load(f)
        if spec.get("kind") != "tabular":
            raise ValueError(f"TabularHandler serves tabular models, but preprocess.json says kind={spec.get('kind')!r}")
        self.spec = TabularSpec.from_dict(spec["tabular"])
        self.temperature = float(spec.get("temperature", 1.0))
        self.model = load_model(model_dir)
        self.log = TabularPredictionLog.from_environment(self.spec, getattr(context, "model_name", "") or "")
        self.initialized = True

    def predict_rows(self, rows: list[Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Rows → answers (an error entry for each bad row) and the unseen-category counts."""
        assert self.spec is not None
        enc = encode_rows(rows, self.spec)
        answers: list[dict[str, Any]] = [error_answer(err, i) for i, err in enc.errors.items()]
        by_position: dict[int, dict[str, Any]] = {a["row"]: a for a in answers}
        if enc.index:
            with torch.no_grad():
                outputs = self.model(torch.from_numpy(enc.x_num), torch.from_numpy(enc.x_cat)).numpy()
            for i, answer in zip(enc.index, predictions_from_outputs(outputs, self.spec, temperature=self.temperature)):
                by_position[i] = answer
            if self.log is not None:
                self.log.record([rows[i] for i in enc.index], [by_position[i] for i in enc.index])
        return [by_position[i] for i in range(len(rows))], enc.unknown_categories

    def handle(self, data: list[Any], context: Any) -> list[str]:
        """Decode each request, one forward over every good row of the batch, answer each request."""
        started = time.perf_counter()
        bodies: list[Any] = [None] * len(data)
        answers: list[str | None] = [None] * len(data)
        for idx, request in enumerate(data):
            try:
                body = request.get("body") if isinstance(request, dict) else request
                if body is None and isinstance(request, dict):
                    body = request.get("data")
                bodies[idx] = decode_request(body)
            except RequestError as err:
                answers[idx] = self._refuse(context, idx, err.status, {"error": str(err), "code": "bad_request"})
        flat = [row for rows in bodies if rows is not None for row in rows]
        results, unknown = self.predict_rows(flat) if flat else ([], {})
        for column, count in unknown.items():
            self.unknown_categories[column] = self.unknown_categories.get(column, 0) + count
            self._metric(context, "UnknownCategory", count, column)
        position = 0
        for idx, rows in enumerate(bodies):
            if rows is None:
                continue
            mine = results[position:position + len(rows)]
            position += len(rows)
            if all("error" in a for a in mine):  # nothing to answer: the request is refused, naming the column
                first = mine[0]
                answers[idx] = self._refuse(context, idx, 400, {**first, "errors": mine})
            else:
                answers[idx] = json.dumps(mine)
        finish_answers(context, len(data))
        self._metric(context, "HandlerLatencyMs", (time.perf_counter() - started) * 1000.0, "all")
        return answers  # type: ignore[return-value]

    @staticmethod
    def _refuse(context: Any, idx: int, status: int, body: dict[str, Any]) -> str:
        phrase = str(body.get("error", "bad request")).encode("ascii", "backslashreplace").decode()[:200]
        context.set_response_status(status, phrase, idx)
        return json.dumps(body)

    @staticmethod
    def _metric(context: Any, name: str, value: float, column: str) -> None:
        metrics = getattr(context, "metrics", None)
        if metrics is None:
            return
        try:  # TorchServe's metrics API; a metrics failure never fails a prediction
            metrics.add_metric(name, float(value), unit="count" if name == "UnknownCategory" else "ms",
                               dimensions=[], metric_type="COUNTER" if name == "UnknownCategory" else "GAUGE")
        except Exception:  # noqa: BLE001
            logger.debug("metric %s for %s not recorded", name, column)


