"""Any torchvision classification model, with its stem adapted to small or grayscale inputs."""
from __future__ import annotations

import torch
from torch import nn


class TorchvisionClassifier(nn.Module):
    """Wraps a torchvision model built by config; optionally swaps the ResNet stem for small images."""

    def __init__(self, model: nn.Module, in_channels: int = 3, small_input_stem: bool = False) -> None:
        super().__init__()
        if small_input_stem or in_channels != 3:
            conv1 = getattr(model, "conv1", None)
            if not isinstance(conv1, nn.Conv2d):
                raise ValueError(
                    f"{type(model).__name__} has no ResNet-style 'conv1': small_input_stem and "
                    "in_channels != 3 need one; use in_channels=3 and small_input_stem=false"
                )
            kernel, stride, padding = ((3, 1, 1) if small_input_stem else (7, 2, 3))
            model.conv1 = nn.Conv2d(in_channels, conv1.out_channels, kernel, stride, padding, bias=False)
            if small_input_stem and hasattr(model, "maxpool"):
                model.maxpool = nn.Identity()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) → logits."""
        return self.model(pixel_values)
