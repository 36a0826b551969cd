"""Group attributes for fairness: a dataset column, or a documented attribute derived from the inputs.

`fairness.group` (conf/evaluate.yaml) is one of:
- `auto`: the dataset's documented default: `ink_density` for images, `text_length` for text;
- `ink_density`: mean pixel intensity of the image (preprocessing undone, 0..1) above or below the
  *training split's* median → "ink_heavy" / "ink_light" (stroke-heavy vs light handwriting for digits);
- `text_length`: whitespace-separated word count of the cleaned text above or below the training
  split's median → "long" / "short";
- `column:NAME`: any column of a text dataset's CSV/JSONL/Parquet files (numeric columns with more than
  `max_groups` values are split at the training median, like the derived attributes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.errors import ConfigError

if TYPE_CHECKING:
    from evaluation.predictions import EvaluationData

DERIVED = ("ink_density", "text_length")


@dataclass
class GroupAttribute:
    """Group name per item of the evaluated split, with what the attribute means."""

    name: str
    values: list[str]
    description: str


def _median_split(train: np.ndarray, evaluated: np.ndarray, high: str, low: str) -> tuple[list[str], float]:
    threshold = float(np.median(train))
    return [high if v > threshold else low for v in evaluated], threshold


def _ink_density(data: "EvaluationData", split: str) -> GroupAttribute:
    if data.kind != "image":
        raise ConfigError("fairness.group=ink_density needs an image dataset; use text_length or column:NAME for text")
    ink = {s: data.raw_pixels(s).mean(axis=(1, 2, 3)) for s in ("train", split)}
    values, threshold = _median_split(ink["train"], ink[split], "ink_heavy", "ink_light")
    return GroupAttribute("ink_density", values,
                          f"mean pixel intensity (0..1, preprocessing undone) above (ink_heavy) or at/below (ink_light) "
                          f"the training median {threshold:.4f}: stroke-heavy vs light images")


def _text_length(data: "EvaluationData", split: str) -> GroupAttribute:
    if data.kind != "text":
        raise ConfigError("fairness.group=text_length needs a text dataset; use ink_density for images")
    words = {s: np.array([len(t.split()) for t in data.features(s)]) for s in ("train", split)}
    values, threshold = _median_split(words["train"], words[split], "long", "short")
    return GroupAttribute("text_length", values,
                          f"word count above (long) or at/below (short) the training median {threshold:g} words")


def column_values(data: "EvaluationData", column: str) -> dict[str, object]:
    """item id → the column's value, read from the text datamodule's source files (ids as the datamodule makes them)."""
    from datamodules.text import read_table

    dm = data.datamodule
    files = [f for f in (getattr(dm, "train_file", None), getattr(dm, "test_file", None)) if f]
    if not files:
        raise ConfigError(f"fairness.group=column:{column} needs a tabular (text) dataset; images have no columns: "
                         "use ink_density")
    out: dict[str, object] = {}
    for path in files:
        frame = read_table(path, getattr(dm, "na_values", None))
        if column not in frame.columns:
            raise ConfigError(f"fairness.group=column:{column}: {path} has no such column; its columns are "
                           f"{list(frame.columns)}")
        keys = frame[dm.id_column] if dm.id_column else pd.Series(range(1, len(frame) + 1))
        out.update({f"{path.name}:{k}": v for k, v in zip(keys, frame[column])})
    return out


def _column(data: "EvaluationData", split: str, column: str, max_groups: int) -> GroupAttribute:
    lookup = column_values(data, column)
    ids = {s: [data.datamodule.item_ids[i] for i in data.datamodule.splits[s]] for s in ("train", split)}
    raw = {s: pd.Series([lookup.get(i) for i in ids[s]]) for s in ids}
    numeric = pd.to_numeric(raw[split], errors="coerce")
    if numeric.notna().all() and raw[split].nunique() > max_groups:
        values, threshold = _median_split(pd.to_numeric(raw["train"], errors="coerce").dropna().to_numpy(),
                                          numeric.to_numpy(), f"{column}>median", f"{column}<=median")
        return GroupAttribute(column, values, f"column {column!r} above / at-or-below its training median {threshold:g}")
    values = ["(missing)" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in raw[split]]
    return GroupAttribute(column, values, f"column {column!r} of the dataset files")


def resolve_groups(spec: str, data: "EvaluationData", split: str = "test", max_groups: int = 10) -> GroupAttribute:
    """The group of every item of `split` for a `fairness.group` spec (see the module docstring)."""
    if spec == "auto" and data.kind == "tabular":  # a table's own first categorical (else numeric) column
        table = data.datamodule.spec
        spec = f"column:{(table.categorical or table.numeric)[0].name}"
    if spec == "auto":
        spec = "ink_density" if data.kind == "image" else "text_length"
    if spec == "ink_density":
        return _ink_density(data, split)
    if spec == "text_length":
        return _text_length(data, split)
    if spec.startswith("column:") and spec[len("column:"):]:
        return _column(data, split, spec[len("column:"):], max_groups)
    raise ConfigError(f"fairness.group={spec!r}: use auto, {', '.join(DERIVED)} or column:NAME")
