"""Serving's padding of text batches: to the batch's longest text when the model masks padding.

Ships inside every `.mar` (in the `runtime/` package). Support tickets are ~10 tokens of a max_length of
64: padding each request to 64 made a MiniLM forward 25 ms at batch 1 (14 ms at its real length) and
dynamic batching gained 1.2x (3.4x padded to the longest; benchmarks/results/PROFILE.md, serving).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from .classifier_io import collate_texts, predict_batch
from .preprocessing import PreprocessSpec

PROBE_TEXTS = ("a short probe", "a somewhat longer probe text for the padding check, with more words in it")


def padding_for(model: Callable[..., torch.Tensor], tokenizer: Any, spec: PreprocessSpec,
                device: torch.device | str = "cpu") -> str:
    """"longest" when the model's logits do not change with the padding (it masks it), else "max_length"
    (a model that reads padded positions keeps training's shapes). The handler and batch scoring both ask
    here, so a scored row equals the served answer bit for bit."""
    try:
        fixed = predict_batch(model, collate_texts(PROBE_TEXTS, tokenizer, spec, "max_length"), device)
        longest = predict_batch(model, collate_texts(PROBE_TEXTS, tokenizer, spec, "longest"), device)
    except Exception:  # noqa: BLE001 - a model that cannot take another length (fixed-shape trace) keeps max_length
        return "max_length"
    same = fixed.shape == longest.shape and torch.allclose(fixed, longest, atol=1e-4, rtol=1e-4)
    return "longest" if same else "max_length"
