"""A small convolutional classifier for images of any size."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class SimpleCNN(nn.Module):
    """Conv-BN-ReLU blocks (each halving the resolution), global average pooling, linear head."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 128),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(channels):
            layers += [
                nn.Conv2d(prev, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            prev = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(prev, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) → logits (N, num_classes)."""
        x = self.pool(self.features(pixel_values)).flatten(1)
        return self.head(self.dropout(x))
