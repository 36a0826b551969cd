"""The per-record and per-batch steps of scoring: the TorchServe handlers' own functions, imported.

Images: the file's bytes go through `decode_image_request`, exactly like a raw PNG/JPEG request body.
Texts: a table cell is the text itself, so it goes through `clean_text`, the check the handler applies to
a plain-text body (the handler's JSON sniffing of bodies starting with "{" is about HTTP requests, not
about cells). Batches: `collate_images` / `collate_texts`; forward: `predict_batch`; answers:
`format_predictions` (temperature, top-k).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch

from runtime import classifier_io as handler_io
from serving.scoring.dataset import RejectMissingText
from serving.scoring.model import ScoringModel


def item_preparer(model: ScoringModel) -> Callable[[Any], Any]:
    """Raw record (image bytes or text value) → one batch element; BadInputError says why not."""
    if model.spec.kind == "image":
        return partial(decode_image_file, spec=model.spec)
    return RejectMissingText(partial(handler_io.pp.clean_text, spec=model.spec))


def decode_image_file(data: bytes, spec: handler_io.PreprocessSpec) -> torch.Tensor:
    """Image file bytes → normalised tensor (only the tensor travels back from the worker)."""
    return handler_io.decode_image_request(data, spec).value


def batch_builder(model: ScoringModel) -> Callable[[list[Any]], dict[str, torch.Tensor]]:
    """Prepared items → the model's input tensors for one forward pass."""
    if model.spec.kind == "image":
        return handler_io.collate_images
    return partial(handler_io.collate_texts, tokenizer=model.tokenizer, spec=model.spec)


def predictions(model: ScoringModel, inputs: dict[str, torch.Tensor], top_k: int) -> list[dict[str, Any]]:
    """One forward + the handler's answer format: [{"label", "probability", "top_k": [...]}, ...]."""
    return handler_io.format_predictions(model(inputs), model.spec, top_k)
