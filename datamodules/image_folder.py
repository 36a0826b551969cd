"""Any ImageFolder directory (root/CLASS/*.png, or root/{train,val,test}/CLASS/*): any mode, any size."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from core.errors import ConfigError, DataError, MissingPathError
from datamodules.base import SPLITS, ClassificationDataModule
from datamodules.image_dataset import ImageDataset, compose_augment
from runtime.preprocessing import BadInputError, PreprocessSpec, decode_image
from datamodules.records import BadRecord

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class ImageFolderDataModule(ClassificationDataModule):
    """Class names are sub-folder names; every file is opened and checked once at setup."""

    def __init__(
        self,
        root: str | None = None,
        image_size: Sequence[int] = (32, 32),
        channels: int = 3,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        augment: Sequence[Callable] | None = None,
        max_image_pixels: int = 40_000_000,
        background: Sequence[int] = (255, 255, 255),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if root is None:
            raise ConfigError("ImageFolderDataModule needs a folder: pass datamodule.root=PATH")
        self.root = Path(root)
        self.image_size = list(image_size)
        self.channels = channels
        self.mean = list(mean)
        self.std = list(std)
        self.augment = compose_augment(augment)
        self.max_image_pixels = int(max_image_pixels)
        self.background = [int(v) for v in background]
        self.paths: list[Path] = []

    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(
            kind="image", labels=self.labels, image_size=self.image_size,
            channels=self.channels, mean=self.mean, std=self.std,
            max_image_pixels=self.max_image_pixels, background=self.background,
        )

    def _load(self) -> None:
        if not self.root.is_dir():
            raise MissingPathError(f"datamodule.root={self.root} is not a folder of class sub-folders")
        presplit = all((self.root / s).is_dir() for s in SPLITS)
        split_roots = {s: self.root / s for s in SPLITS} if presplit else {"all": self.root}
        self.labels = sorted(
            {d.name for r in split_roots.values() for d in r.iterdir() if d.is_dir() and not d.name.startswith(".")}
        )
        if not self.labels:
            raise DataError(f"datamodule.root={self.root} has no class sub-folders (expected root/CLASS/image.png)")
        spec = self.preprocess_spec()
        split_of: list[str] = []
        for split, split_root in split_roots.items():
            for label_index, label in enumerate(self.labels):
                folder = split_root / label
                if not folder.is_dir():
                    continue
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    if path.suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    self.total_records += 1
                    rel = str(path.relative_to(self.root))
                    data = path.read_bytes()
                    try:
                        decode_image(data, spec)
                    except BadInputError as err:
                        self.bad_records.append(BadRecord(rel, str(err)))
                        continue
                    self._hash.update(rel.encode() + b"\0" + data)
                    self.paths.append(path)
                    self.item_ids.append(rel)
                    self.item_labels.append(label_index)
                    split_of.append(split)
        if presplit:
            self.splits = {s: [i for i, sp in enumerate(split_of) if sp == s] for s in SPLITS}

    def _open(self, index: int) -> Image.Image:
        with Image.open(self.paths[index]) as image:
            image.load()
            return image.copy()

    def _make_dataset(self, split: str, indices: list[int]) -> ImageDataset:
        return ImageDataset(
            self._open, indices, self.item_labels, self.preprocess_spec(),
            self.augment if split == "train" else None,
        )
