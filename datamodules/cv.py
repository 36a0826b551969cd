"""K-fold cross-validation splits: which items of a fold are train, val and test (stratified, seeded).

Without a fixed test set (digits, a plain ImageFolder) fold k of K is the test set and the validation
split is carved (val_fraction, stratified) from the other K-1 folds. With a fixed test set (a text
datamodule's test_file, a pre-split ImageFolder) the folds cover the training pool and fold k is the
validation set; the test set stays the same for every fold.
"""
from __future__ import annotations

from typing import Any, Sequence

from sklearn.model_selection import StratifiedKFold

from core.errors import ConfigError
from datamodules.splits import stratified_split


def check_fold(fold: int | None, folds: int | None) -> None:
    """cv.folds >= 2 and 0 <= cv.fold < cv.folds, or a message saying what to set."""
    if folds is None:
        if fold is not None:
            raise ConfigError(f"cv.fold={fold} needs cv.folds (e.g. python train.py +experiment=X cv.folds=5)")
        return
    if not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"cv.folds={folds!r}: use an integer >= 2 (or leave it null for one train/val/test split)")
    if fold is None or not 0 <= fold < folds:
        raise ConfigError(f"cv.fold={fold!r} must be in 0..{folds - 1}; `cv.folds={folds}` alone sweeps every fold")


def cv_splits(labels: Sequence[int], fold: int, folds: int, val_fraction: float, seed: int,
              fixed_test: Sequence[int] | None = None) -> dict[str, list[int]]:
    """train/val/test item indices of one fold (see the module docstring)."""
    check_fold(fold, folds)
    fixed = set(fixed_test or [])
    pool = [i for i in range(len(labels)) if i not in fixed]
    pool_labels = [labels[i] for i in pool]
    smallest = min(pool_labels.count(c) for c in set(pool_labels))
    if smallest < folds:
        raise ConfigError(f"cv.folds={folds}: the smallest class has only {smallest} items; use at most {smallest} folds")
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    rest, held = list(kfold.split(pool, pool_labels))[fold]
    held_out = sorted(pool[i] for i in held)
    rest_items = [pool[i] for i in rest]
    if fixed:
        return {"train": sorted(rest_items), "val": held_out, "test": sorted(fixed)}
    inner = stratified_split([labels[i] for i in rest_items], {"train": 0.0, "val": val_fraction}, seed)
    return {"train": sorted(rest_items[i] for i in inner["train"]), "val": sorted(rest_items[i] for i in inner["val"]),
            "test": held_out}


def cv_mode(folds: Any) -> str | None:
    """hydra.mode: MULTIRUN when cv.folds is set; None leaves the choice to -m / --multirun."""
    return "MULTIRUN" if folds not in (None, "", 0) else None


def cv_sweep_params(folds: Any) -> dict[str, str]:
    """hydra.sweeper.params: one job per fold when cv.folds is set, none otherwise (other sweeps unchanged)."""
    if folds in (None, "", 0):
        return {}
    if not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"cv.folds={folds!r}: use an integer >= 2")
    return {"cv.fold": f"range(0,{folds})"}
