"""Data-check thresholds (the `data_checks:` node of a datamodule config); unknown keys are an error."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from core.schema import validate


@dataclass
class DataChecksConfig:
    """A threshold of None reports the check without ever failing on it."""

    at_setup: bool = True                          # run the cheap subset (leakage, missing, balance) once per
    #                                                training run, on rank 0 before fit (name kept for configs)
    max_missing_fraction: Optional[float] = 0.05   # per table column other than text/label (max_bad_fraction gates those)
    max_duplicate_fraction: Optional[float] = 0.05  # extra exact copies / items, per split
    max_near_duplicate_fraction: Optional[float] = None  # items with a near twin / items (report only)
    max_leaked_fraction: Optional[float] = 0.0     # val (test) items whose content is also in train (train or val)
    max_class_imbalance: Optional[float] = 20.0    # largest / smallest class count in train
    max_pii_fraction: Optional[float] = None       # texts containing PII / texts (report only by default)
    near_duplicate_similarity: float = 0.9         # text: cosine of char 3-5-gram TF-IDF vectors
    near_duplicate_hash_distance: int = 2          # images: Hamming distance of 64-bit difference hashes
    max_near_duplicate_items: int = 20000          # above this many items near duplicates are sampled
    max_examples: int = 5                          # examples kept per finding (redacted for PII)


def load_checks_config(node: Any) -> DataChecksConfig:
    """DataChecksConfig from a dict / DictConfig / None, naming any unknown key (core.schema's format)."""
    if node is None:
        return DataChecksConfig()
    if isinstance(node, DataChecksConfig):
        return node
    return validate(DataChecksConfig, node, name="datamodule.data_checks")
