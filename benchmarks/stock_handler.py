"""The baseline handler: TorchServe's stock BaseHandler (model loading, inference, handle) with the least a user
must add for image bytes: decode + normalise in preprocess, argmax label in postprocess. No validation, no top-k."""
from __future__ import annotations

import io

import torch
from PIL import Image
from ts.torch_handler.base_handler import BaseHandler

MEAN, STD = 0.3056, 0.3778  # digits_cnn's normalisation (the same model, so the same inputs)


class StockDigitsHandler(BaseHandler):
    """BaseHandler + a bare preprocess/postprocess."""

    def preprocess(self, data: list[dict]) -> torch.Tensor:
        images = []
        for row in data:
            body = row.get("data") or row.get("body")
            image = Image.open(io.BytesIO(body)).convert("L").resize((8, 8))
            x = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(1, 8, 8).float() / 255.0
            images.append((x - MEAN) / STD)
        return torch.stack(images).to(self.device)

    def postprocess(self, data: torch.Tensor) -> list[dict]:
        return [{"label": str(int(i))} for i in data.argmax(dim=1).tolist()]
