"""An interpolated Kneser-Ney trigram LM in numpy: the baseline a neural LM must beat on the same tokens.

Counts come from the training split's token stream (documents end to end, as the model saw them); scoring
uses exactly the model's (input_ids, labels) windows, so both perplexities are over the same targets.
Trigram contexts are taken inside a window, like the model's (position 0 falls back to the bigram).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

DISCOUNT = 0.75  # the usual absolute discount of Kneser-Ney (Chen & Goodman)


def _counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, counts = np.unique(keys, return_counts=True)
    return uniq, counts.astype(np.float64)


def _lookup(table: np.ndarray, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """values[key] for each key present in the sorted `table`, 0 elsewhere."""
    if len(table) == 0:
        return np.zeros(len(keys))
    pos = np.clip(np.searchsorted(table, keys), 0, len(table) - 1)
    return np.where(table[pos] == keys, values[pos], 0.0)


class KneserNeyTrigram:
    """P(w | u v) with interpolated Kneser-Ney smoothing (continuation counts for the lower orders)."""

    def __init__(self, vocab_size: int, discount: float = DISCOUNT) -> None:
        self.v = int(vocab_size)
        self.d = discount

    def fit(self, tokens: np.ndarray) -> "KneserNeyTrigram":
        """Count uni/bi/trigrams of one token stream (int64 keys; vocabularies up to ~2M ids)."""
        t = np.asarray(tokens, dtype=np.int64)
        v = self.v
        tri, self.c3 = _counts((t[:-2] * v + t[1:-1]) * v + t[2:])
        self.k3 = tri
        big, bigram_counts = _counts(t[:-1] * v + t[1:])
        # context counts c(u v ·) and how many distinct w follow u v (N1+(u v ·))
        self.ctx3, self.ctx3_total = _counts_sum(tri // v, self.c3)
        _, self.ctx3_types = _counts_sum(tri // v, np.ones_like(self.c3))
        # continuation counts of bigrams: N1+(· v w) = how many distinct u precede v w
        self.k2, self.n2 = _counts(tri % (v * v))
        self.ctx2, self.ctx2_total = _counts_sum(self.k2 // v, self.n2)
        _, self.ctx2_types = _counts_sum(self.k2 // v, np.ones_like(self.n2))
        # unigram continuation: N1+(· w) over distinct bigrams, add-one floored so no token has zero mass
        cont = np.bincount(big % v, minlength=v).astype(np.float64)
        self.p1 = (cont + 1.0) / (cont.sum() + v)
        self.train_tokens = len(t)
        del bigram_counts
        return self

    def _p2(self, v_ids: np.ndarray, w: np.ndarray) -> np.ndarray:
        c = _lookup(self.k2, self.n2, v_ids * self.v + w)
        total = _lookup(self.ctx2, self.ctx2_total, v_ids)
        types = _lookup(self.ctx2, self.ctx2_types, v_ids)
        p1 = self.p1[w]
        safe = np.maximum(total, 1.0)
        return np.where(total > 0, np.maximum(c - self.d, 0) / safe + self.d * types / safe * p1, p1)

    def prob(self, u: np.ndarray | None, v_ids: np.ndarray, w: np.ndarray) -> np.ndarray:
        """P(w | u v); u=None (or -1 entries) means no second context token: the bigram level."""
        p2 = self._p2(v_ids, w)
        if u is None:
            return p2
        ctx = u * self.v + v_ids
        c = _lookup(self.k3, self.c3, ctx * self.v + w)
        total = _lookup(self.ctx3, self.ctx3_total, ctx)
        types = _lookup(self.ctx3, self.ctx3_types, ctx)
        safe = np.maximum(total, 1.0)
        p3 = np.where(total > 0, np.maximum(c - self.d, 0) / safe + self.d * types / safe * p2, p2)
        return np.where(u >= 0, p3, p2)

    def window_nll(self, input_ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Per-target NLL (nats) of windows [N, T]: the label at j given input_ids[j-1], input_ids[j]."""
        x, y = np.asarray(input_ids, np.int64), np.asarray(labels, np.int64)
        u = np.concatenate([np.full((len(x), 1), -1), x[:, :-1]], axis=1)
        p = self.prob(u.reshape(-1), x.reshape(-1), y.reshape(-1))
        return -np.log(np.maximum(p, 1e-12)).reshape(y.shape)


def _counts_sum(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and the summed weights per key."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inverse, weights=weights).astype(np.float64)


def fit_on_documents(documents: Iterable[np.ndarray], vocab_size: int) -> KneserNeyTrigram:
    """Fit on the training documents concatenated (each already ends with end-of-text)."""
    stream = np.concatenate([np.asarray(d, dtype=np.int64) for d in documents])
    return KneserNeyTrigram(vocab_size).fit(stream)
