"""A dataset of images (loaded lazily) that applies training-only augmentation, then the shared preprocessing."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from runtime.preprocessing import PreprocessSpec, image_to_tensor, normalize_image


class ImageDataset(Dataset):
    """items[i] → {"pixel_values": CxHxW tensor, "labels": int}."""

    def __init__(
        self,
        load: Callable[[int], Image.Image],
        indices: Sequence[int],
        labels: Sequence[int],
        spec: PreprocessSpec,
        augment: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.load = load
        self.indices = list(indices)
        self.labels = labels
        self.spec = spec
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        image = self.load(index)
        if self.augment is not None:
            # before augmentation: transforms drop the EXIF tag and do not know 16-bit or alpha modes
            image = self.augment(normalize_image(image, self.spec))
        return {"pixel_values": image_to_tensor(image, self.spec), "labels": torch.tensor(self.labels[index])}


def compose_augment(transforms: Sequence[Callable] | None) -> Callable | None:
    """Chain configured torchvision v2 transforms (PIL in, PIL out); None when there are none."""
    if not transforms:
        return None
    from torchvision.transforms import v2

    return v2.Compose(list(transforms))
