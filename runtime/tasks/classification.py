"""Classification in the runtime: its handlers, answers {label, probability, top_k} and scoring's columns."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from .. import classifier_io
from ..preprocessing import PreprocessSpec

HANDLER_FILES = {"image": "image_classifier.py", "text": "text_classifier.py", "tabular": "tabular_handler.py"}
SCORE_COLUMNS = (("label", "string"), ("probability", "float64"), ("top_k_labels", "list<string>"),
                 ("top_k_probabilities", "list<float64>"))


def answers(outputs: torch.Tensor, spec: PreprocessSpec,
            top_ks: Sequence[int | None] | int | None = None) -> list[dict[str, Any]]:
    """Logits → one answer per row: label, probability, top_k list (temperature applied)."""
    return classifier_io.format_predictions(outputs, spec, top_ks)


def score_columns(answer: dict[str, Any]) -> dict[str, Any]:
    """One answer → scoring's column values (the top-k list split into labels and probabilities)."""
    return {"label": answer["label"], "probability": float(answer["probability"]),
            "top_k_labels": [t["label"] for t in answer["top_k"]],
            "top_k_probabilities": [float(t["probability"]) for t in answer["top_k"]]}
