"""Deterministic, stratified train/val/test splits and an epoch-seeded shuffle sampler."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def stratified_split(
    labels: Sequence[int], fractions: dict[str, float], seed: int
) -> dict[str, list[int]]:
    """Split indices per class by the given fractions (the first split takes the remainder)."""
    names = list(fractions)
    if any(f < 0 for f in fractions.values()) or sum(fractions[n] for n in names[1:]) >= 1.0:
        raise ValueError(f"split fractions must be >= 0 and leave room for '{names[0]}': {fractions}")
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, list[int]] = {n: [] for n in names}
    for label in sorted(by_class):
        members = by_class[label]
        order = torch.randperm(len(members), generator=generator).tolist()
        shuffled = [members[i] for i in order]
        start = 0
        for name in names[1:]:
            count = int(round(fractions[name] * len(shuffled)))
            out[name] += shuffled[start : start + count]
            start += count
        out[names[0]] += shuffled[start:]
    return {n: sorted(v) for n, v in out.items()}


class EpochShuffleSampler(Sampler[int]):
    """Shuffles with seed + epoch, so a resumed run sees the same order as an uninterrupted one.

    `loader_generator` goes to the DataLoader: iterator creation (worker seeds) then draws from it,
    reseeded per epoch here, instead of from the global RNG that dropout uses.
    """

    def __init__(self, num_items: int, seed: int) -> None:
        self.num_items = num_items
        self.seed = seed
        self.epoch = 0
        self.loader_generator = torch.Generator().manual_seed(seed)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch
        self.loader_generator.manual_seed(self.seed + epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_items, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_items
