"""Deterministic, stratified train/val/test splits and an epoch-seeded shuffle sampler."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler

from core.errors import ConfigError


def stratified_split(
    labels: Sequence[int], fractions: dict[str, float], seed: int
) -> dict[str, list[int]]:
    """Split indices per class by the given fractions (the first split takes the remainder)."""
    names = list(fractions)
    if any(f < 0 for f in fractions.values()) or sum(fractions[n] for n in names[1:]) >= 1.0:
        raise ConfigError(f"split fractions must be >= 0 and leave room for '{names[0]}' (datamodule.val_fraction + "
                          f"test_fraction < 1): {fractions}")
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


class EpochShuffleSampler(DistributedSampler):
    """Shuffles with seed + epoch, so a resumed run sees the same order as an uninterrupted one.

    One sampler for one process and for N ranks (each takes every N-th index of the same permutation,
    exactly as torch's DistributedSampler, which Lightning then leaves in place). `resume_at` skips the
    samples an interrupted epoch already trained on, so a mid-epoch resume continues where it stopped.
    `loader_generator` goes to the DataLoader: iterator creation (worker seeds) then draws from it,
    reseeded per epoch here, instead of from the global RNG that dropout uses.
    """

    def __init__(self, num_items: int, seed: int, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = False) -> None:
        # drop_last=True: disjoint rank shares (the < num_replicas leftover items of an epoch's permutation
        # are dropped, different ones each epoch); False pads by repeating items, as torch does
        super().__init__(range(num_items), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=drop_last)
        self.num_items = num_items
        self.loader_generator = torch.Generator().manual_seed(seed)
        self._resume: tuple[int, int] | None = None  # (epoch, samples of this rank already consumed)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        super().set_epoch(epoch)
        self.loader_generator.manual_seed(self.seed + epoch)

    def resume_at(self, epoch: int, consumed: int) -> None:
        """The next pass over `epoch` starts after its first `consumed` samples (of this rank)."""
        self._resume = (epoch, consumed)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        if self._resume is not None and self._resume[0] == self.epoch:
            indices = indices[self._resume[1]:]
            self._resume = None  # only the interrupted epoch is shortened
        return iter(indices)


class EvalShardSampler(DistributedSampler):
    """Rank r of N takes items r, r+N, r+2N, ...: disjoint shares that cover every item exactly once.

    torch's DistributedSampler (what Lightning installs for val/test) pads the last share with repeated
    items, so distributed evaluation metrics counted some samples twice. Shares here may differ by one item;
    torchmetrics and `self.log(sync_dist=True)` sum counts across ranks, so the metrics equal one process's.
    A DistributedSampler subclass, so Lightning (use_distributed_sampler) keeps it in place.
    """

    def __init__(self, num_items: int, num_replicas: int, rank: int) -> None:
        super().__init__(range(num_items), num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_items = num_items
        self.num_samples = len(range(rank, num_items, num_replicas))
        self.total_size = num_items

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_items, self.num_replicas))
