"""scikit-learn's bundled 8x8 handwritten digits (1,797 real images), served as grayscale PIL images."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image

from datamodules.base import ClassificationDataModule
from datamodules.image_dataset import ImageDataset, compose_augment
from runtime.preprocessing import PreprocessSpec


def digits_images() -> tuple[list[Image.Image], list[int]]:
    """All digits as 8x8 'L' images (0-16 scaled to 0-255) and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = np.clip(np.rint(data.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return [Image.fromarray(p, mode="L") for p in pixels], [int(t) for t in data.target]


class DigitsDataModule(ClassificationDataModule):
    """Digits 0-9; preprocessing is the same image spec that serving applies to PNG bytes."""

    def __init__(
        self,
        mean: Sequence[float] = (0.3056,),
        std: Sequence[float] = (0.3778,),
        augment: Sequence[Callable] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.mean = list(mean)
        self.std = list(std)
        self.augment = compose_augment(augment)
        self.images: list[Image.Image] = []

    def _load(self) -> None:
        self.images, self.item_labels = digits_images()
        self.labels = [str(d) for d in range(10)]
        self.item_ids = [f"digits/{i}" for i in range(len(self.images))]
        self.total_records = len(self.images)
        for image in self.images:
            self._hash.update(image.tobytes())
        self._hash.update(bytes(self.item_labels))

    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(kind="image", labels=self.labels, image_size=[8, 8], channels=1, mean=self.mean, std=self.std)

    def _make_dataset(self, split: str, indices: list[int]) -> ImageDataset:
        return ImageDataset(
            self.images.__getitem__,
            indices,
            self.item_labels,
            self.preprocess_spec(),
            self.augment if split == "train" else None,
        )
