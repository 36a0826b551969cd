"""Regression in the runtime (tabular): its handler, answers {prediction, interval} and scoring's columns."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..preprocessing import PreprocessSpec
from ..tabular import TabularSpec
from ..tabular_io import predictions_from_outputs

HANDLER_FILES = {"tabular": "tabular_handler.py"}
SCORE_COLUMNS = (("prediction", "float64"), ("interval_lo", "float64"), ("interval_hi", "float64"))


def answers(outputs: torch.Tensor, spec: PreprocessSpec,
            top_ks: Sequence[int | None] | int | None = None) -> list[dict[str, Any]]:
    """Standardised outputs → predictions in the target's units with the conformal interval."""
    return predictions_from_outputs(outputs.detach().float().cpu().numpy(), TabularSpec.from_dict(spec.tabular))


def score_columns(answer: dict[str, Any]) -> dict[str, Any]:
    """One answer → prediction, interval_lo, interval_hi."""
    interval = answer.get("interval") or [None, None]
    return {"prediction": float(answer["prediction"]), "interval_lo": interval[0], "interval_hi": interval[1]}
