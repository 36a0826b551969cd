"""Tabular requests and answers: decode {"rows": [...]} or one row, format predictions (handler and score.py).

Regression nets predict the standardised target; `predictions_from_outputs` turns that back into the
target's units (and adds the split-conformal interval when the spec has one) — the only place it happens,
so served, scored and reported numbers agree by construction.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .tabular import RowError, TabularSpec

MAX_ROWS = 10_000  # rows per request


class RequestError(ValueError):
    """The request as a whole is unusable (not JSON, no rows, too many rows)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_request(body: Any) -> list[Any]:
    """Bytes/str/dict body → list of row objects: {"rows": [...]} or a single row object."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RequestError(f"request body is not UTF-8: {err}") from err
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as err:
            raise RequestError(f"request body is not JSON: {err}") from err
    if isinstance(body, dict) and "rows" in body and len(body) == 1:
        rows = body["rows"]
        if not isinstance(rows, list):
            raise RequestError(f"'rows' must be a list of row objects, got {type(rows).__name__}")
    elif isinstance(body, dict):
        rows = [body]
    elif isinstance(body, list):
        rows = body
    else:
        raise RequestError(f'send {{"rows": [{{column: value}}, ...]}} or one row object, got {type(body).__name__}')
    if not rows:
        raise RequestError("no rows in the request")
    if len(rows) > MAX_ROWS:
        raise RequestError(f"{len(rows)} rows in one request, limit {MAX_ROWS}", status=413)
    return rows


def destandardise(outputs: np.ndarray, spec: TabularSpec) -> np.ndarray:
    """Regression net outputs [N, 1] or [N] → predictions in the target's units [N] (float64)."""
    return np.asarray(outputs, dtype=np.float64).reshape(-1) * spec.target_std + spec.target_mean


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predictions_from_outputs(outputs: np.ndarray, spec: TabularSpec, top_k: int = 3,
                             temperature: float = 1.0) -> list[dict[str, Any]]:
    """Net outputs of the encoded rows → one answer per row."""
    if spec.task == "regression":
        values = destandardise(outputs, spec)
        q = float(spec.conformal["q"]) if spec.conformal else None
        return [{"prediction": float(v), "interval": [float(v - q), float(v + q)] if q is not None else None}
                for v in values]
    probs = softmax(np.asarray(outputs, dtype=np.float64) / temperature)
    k = min(top_k, probs.shape[1])
    answers = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:k]
        answers.append({"label": spec.labels[int(order[0])], "probability": float(row[order[0]]),
                        "top_k": [{"label": spec.labels[int(i)], "probability": float(row[i])} for i in order]})
    return answers


def error_answer(err: RowError, row_index: int) -> dict[str, Any]:
    """The JSON body of a refused row: which row, which column, why."""
    return {"row": row_index, **err.to_dict()}


def score_columns(answer: dict[str, Any]) -> dict[str, Any]:
    """Flat output columns of batch scoring for one answer (same numbers as the handler's)."""
    if "prediction" in answer:
        interval = answer.get("interval")
        return {"prediction": answer["prediction"],
                "interval_lo": interval[0] if interval else math.nan,
                "interval_hi": interval[1] if interval else math.nan}
    return {"label": answer["label"], "probability": answer["probability"]}
