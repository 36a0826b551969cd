"""Packed windows over a split's documents and the by-document split, from the document index alone."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.token_shards import TokenDataError, TokenShards


def split_documents(count: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded split of document numbers: no document is in two splits; each split sorted (file order)."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise TokenDataError(f"datamodule.val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 "
                         "and leave documents for training (sum < 1)")
    order = np.random.default_rng(seed).permutation(count)
    # at least one document for a split asked for (tiny corpora), never all of them
    n_val = max(int(round(val_fraction * count)), 1 if val_fraction > 0 else 0)
    n_test = max(int(round(test_fraction * count)), 1 if test_fraction > 0 else 0)
    if n_val + n_test >= count:
        raise TokenDataError(f"{count} documents cannot be split into train/val/test with val_fraction={val_fraction}, "
                         f"test_fraction={test_fraction}: tokenize more documents or lower the fractions")
    return {"val": np.sort(order[:n_val]), "test": np.sort(order[n_val:n_val + n_test]),
            "train": np.sort(order[n_val + n_test:])}


class PackedWindows(Dataset):
    """Window i = tokens [i*T, i*T + T + 1) of the split's documents laid end to end (each ends in <|endoftext|>).

    Only the documents' (shard, offset, length) and their running token totals live in memory; each item
    reads its T + 1 ids from the shards. input_ids = window[:-1], labels = window[1:].
    """

    def __init__(self, shards: TokenShards, documents: np.ndarray, seq_len: int) -> None:
        self.shards = shards
        self.documents = np.ascontiguousarray(documents, dtype=np.int64)
        self.seq_len = seq_len
        self.ends = np.cumsum(self.documents[:, 2])  # end (exclusive) of each document in the stream
        self.tokens = int(self.ends[-1]) if len(self.ends) else 0
        self.count = max((self.tokens - 1) // seq_len, 0)  # the last, partial window is dropped

    def __len__(self) -> int:
        return self.count

    def window(self, i: int) -> np.ndarray:
        """The T + 1 token ids of window i."""
        if not 0 <= i < self.count:
            raise IndexError(f"window {i} of {self.count}")
        start, need = i * self.seq_len, self.seq_len + 1
        doc = int(np.searchsorted(self.ends, start, side="right"))
        parts = []
        while need:
            shard, offset, length = self.documents[doc]
            doc_start = self.ends[doc] - length
            skip = start - doc_start
            take = int(min(length - skip, need))
            parts.append(self.shards.read(int(shard), int(offset + skip), take))
            need -= take
            start += take
            doc += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.from_numpy(self.window(i).astype(np.int64))
        return {"input_ids": ids[:-1], "labels": ids[1:]}
