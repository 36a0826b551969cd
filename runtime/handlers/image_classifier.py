"""TorchServe handler for Shipyard image classifiers: PNG/JPEG bytes or JSON {"image": base64} → top-k JSON.

One class in this file (TorchServe's rule); the shared logic is in classifier_base / classifier_io.
"""
from __future__ import annotations

from typing import Any

import torch

from .. import classifier_io
from ..classifier_base import ClassifierHandler


class ImageClassifierHandler(ClassifierHandler):
    """Decodes each image with the run's preprocessing spec; one forward per batch."""

    kind = "image"

    def decode(self, request: Any) -> classifier_io.Decoded:
        """Raw image bytes or JSON with a base64 image → normalised CxHxW tensor."""
        return classifier_io.decode_image_request(request, self.spec)

    def collate(self, values: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Stack the image tensors."""
        return classifier_io.collate_images(values)
