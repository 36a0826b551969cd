"""A datamodule's items as plain records for the checks: split, label, content key, raw text or image."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image



def normalise_text(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive form, for exact-duplicate and leakage checks."""
    kept = "".join(ch.lower() if ch.isalnum() else " " for ch in text)
    return " ".join(kept.split())


@dataclass
class DataItems:
    """Per item: id, label index, split; `key` identifies content (sha256); `load` gives the raw item."""

    kind: str
    ids: list[str]
    labels: list[int]
    label_names: list[str]
    split_of: list[str]
    keys: list[str]
    load: Callable[[int], Any]

    def indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split_of) if s == split]


def _image_key(image: Image.Image) -> str:
    return hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


def collect_items(dm: Any) -> DataItems:
    """Items of a set-up ClassificationDataModule (text, digits or image folder)."""
    split_of = [""] * len(dm.item_ids)
    for split, members in dm.splits.items():
        for i in members:
            split_of[i] = split
    if hasattr(dm, "texts"):
        texts = dm.texts
        keys = [hashlib.sha256(normalise_text(t).encode()).hexdigest() for t in texts]
        return DataItems("text", dm.item_ids, dm.item_labels, dm.labels, split_of, keys, texts.__getitem__)
    if hasattr(dm, "images"):
        load: Callable[[int], Image.Image] = dm.images.__getitem__
    elif hasattr(dm, "_open"):
        load = dm._open
    else:
        raise TypeError(f"{type(dm).__name__}: data checks know text, digits and image-folder datamodules")
    keys = [_image_key(load(i)) for i in range(len(dm.item_ids))]
    return DataItems("image", dm.item_ids, dm.item_labels, dm.labels, split_of, keys, load)


__all__ = ["DataItems", "collect_items", "normalise_text"]
