"""TorchServe handler for Shipyard text classifiers: JSON {"text": ...} or a plain-text body → top-k JSON.

One class in this file (TorchServe's rule); the shared logic is in classifier_base / classifier_io.
The tokenizer files ship in the archive's `tokenizer/` folder; `transformers` is optional at serving
time (`preprocessing.load_tokenizer` falls back to the `tokenizers` library).
"""
from __future__ import annotations

from typing import Any

import torch

from .. import classifier_io
from ..classifier_base import ClassifierHandler
from ..text_padding import padding_for


class TextClassifierHandler(ClassifierHandler):
    """Cleans each text, tokenises the good ones together, one forward per batch."""

    kind = "text"

    def __init__(self) -> None:
        super().__init__()
        self.tokenizer: Any = None
        self.padding = "max_length"  # initialize() picks "longest" when the model masks padding

    def load_extras(self, model_dir: str) -> None:
        """Load the tokenizer shipped with the model."""
        if not self.spec.tokenizer_dir:
            raise ValueError(f"{model_dir}/preprocess.json has no tokenizer_dir: re-export the run with export.py")
        self.tokenizer = classifier_io.pp.load_tokenizer(self.spec.tokenizer_dir)
        self.padding = padding_for(self.model, self.tokenizer, self.spec, self.device)

    def decode(self, request: Any) -> classifier_io.Decoded:
        """JSON {"text": ...} or plain text → the cleaned string."""
        return classifier_io.decode_text_request(request, self.spec)

    def collate(self, values: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise the batch as training did (to the longest text when the model masks padding)."""
        return classifier_io.collate_texts(values, self.tokenizer, self.spec, self.padding)
