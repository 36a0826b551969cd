"""Near duplicates: images by 64-bit difference hash (downscaled gradients), texts by char n-gram similarity."""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from datamodules.checks.config import DataChecksConfig
from datamodules.checks.items import DataItems, normalise_text


def difference_hash(image: Image.Image, size: int = 8) -> np.ndarray:
    """dHash bits: grayscale, resize to (size+1) x size, one bit per horizontal gradient sign (64 bits)."""
    small = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR), dtype=np.int16)
    return (small[:, 1:] > small[:, :-1]).flatten()


def _image_pairs(items: DataItems, chosen: list[int], max_distance: int) -> list[tuple[int, int, float]]:
    bits = np.stack([difference_hash(items.load(i)) for i in chosen]).astype(np.int32)
    pairs = []
    for start in range(0, len(chosen), 1024):  # Hamming distances block by block: n x n would not fit for big n
        block = bits[start:start + 1024]
        distance = block @ (1 - bits).T + (1 - block) @ bits.T
        for a, b in zip(*np.nonzero(distance <= max_distance)):
            a_item, b_item = chosen[start + a], chosen[b]
            if start + a < b and items.keys[a_item] != items.keys[b_item]:  # exact copies are the other check's
                pairs.append((a_item, b_item, float(distance[a, b])))
    return pairs


def _text_pairs(items: DataItems, chosen: list[int], min_similarity: float) -> list[tuple[int, int, float]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [normalise_text(items.load(i)) for i in chosen]
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform(texts)
    similarity = (vectors @ vectors.T).tocoo()
    pairs = []
    for a, b, s in zip(similarity.row, similarity.col, similarity.data):
        if a < b and s >= min_similarity and items.keys[chosen[a]] != items.keys[chosen[b]]:
            pairs.append((chosen[a], chosen[b], float(s)))
    return pairs


def near_duplicates(items: DataItems, cfg: DataChecksConfig, seed: int = 0) -> dict[str, Any]:
    """Pairs of different-but-nearly-identical items, within and across splits."""
    chosen = list(range(len(items.ids)))
    sampled = len(chosen) > cfg.max_near_duplicate_items
    if sampled:  # pairwise comparison is quadratic: judge a seeded sample of a very large dataset
        chosen = sorted(np.random.default_rng(seed).choice(chosen, cfg.max_near_duplicate_items, replace=False).tolist())
    if items.kind == "image":
        pairs = _image_pairs(items, chosen, cfg.near_duplicate_hash_distance)
        measure = f"dHash Hamming distance <= {cfg.near_duplicate_hash_distance}"
    else:
        pairs = _text_pairs(items, chosen, cfg.near_duplicate_similarity)
        measure = f"char 3-5-gram cosine >= {cfg.near_duplicate_similarity}"
    involved = {i for a, b, _ in pairs for i in (a, b)}
    fraction = len(involved) / max(len(chosen), 1)
    cross = [p for p in pairs if items.split_of[p[0]] != items.split_of[p[1]] and "train" in
             (items.split_of[p[0]], items.split_of[p[1]])]
    failures = []
    if cfg.max_near_duplicate_fraction is not None and fraction > cfg.max_near_duplicate_fraction:
        failures.append({"check": "near_duplicates", "where": f"{len(involved)} items ({measure})",
                         "message": f"{fraction:.3f} of items have a near twin, above {cfg.max_near_duplicate_fraction}"})
    return {"status": "fail" if failures else ("warn" if pairs else "ok"),
            "summary": f"{len(pairs)} near-duplicate pairs ({measure}); {len(cross)} span train and val/test",
            "measure": measure, "pairs": len(pairs), "items_with_near_twin_fraction": fraction,
            "cross_split_pairs": len(cross), "sampled": sampled,
            "examples": [[items.ids[a], items.ids[b], round(s, 4)] for a, b, s in pairs[: cfg.max_examples]],
            "cross_split_examples": [[items.ids[a], items.ids[b], round(s, 4)] for a, b, s in cross[: cfg.max_examples]],
            "failures": failures}
