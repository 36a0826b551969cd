"""Tabular preprocessing, applied the same way in training, export parity, the handler and batch scoring.

The fitted preprocessing is plain data (`TabularSpec`, saved inside the run's `preprocess.json` under
"tabular"); this module only *applies* it, with the standard library and numpy, so that it ships inside
a `.mar` unchanged. Fitting lives in `datamodules/tabular_fit.py` (training side only).

One row (a mapping column -> raw value) becomes
- `x_num`: float32 [D]: standardised numeric columns (median-imputed), then 0/1 missing indicators;
- `x_cat`: int64 [C]: per categorical column, its vocabulary index (0 is the unknown bucket).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

UNKNOWN = 0                  # index of the unknown bucket in every vocabulary
MAX_CATEGORY_CHARS = 1000    # longer strings are refused (a request, not a category)
TASKS = ("classification", "regression")


class RowError(ValueError):
    """One row that cannot be encoded; `column` names the offending column ("row" for the row itself)."""

    def __init__(self, column: str, code: str, message: str) -> None:
        super().__init__(f"column {column!r}: {message}")
        self.column = column
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form for 4xx answers and _rejects.jsonl."""
        return {"column": self.column, "code": self.code, "error": self.message}


@dataclass
class NumericColumn:
    """A numeric feature: impute with `median`, then (x - mean) / std; `indicator`: add a missing flag."""

    name: str
    median: float
    mean: float
    std: float
    indicator: bool = False
    min: float = 0.0   # training range (data checks, drift bins)
    max: float = 0.0


@dataclass
class CategoricalColumn:
    """A categorical feature: vocabulary index (1-based; 0 = unknown), most-frequent imputation."""

    name: str
    vocab: list[str]
    most_frequent: str
    indicator: bool = False

    def __post_init__(self) -> None:
        self.index = {v: i + 1 for i, v in enumerate(self.vocab)}  # not a field: asdict() leaves it out


@dataclass
class TabularSpec:
    """The fitted preprocessing of one tabular run (plain data; fitted on the training split only)."""

    task: str
    target: str
    numeric: list[NumericColumn] = field(default_factory=list)
    categorical: list[CategoricalColumn] = field(default_factory=list)
    id_column: str | None = None
    drop: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)   # classification
    target_mean: float = 0.0                           # regression: the net predicts (y - mean) / std
    target_std: float = 1.0
    conformal: dict[str, float] | None = None          # {"alpha", "q"} from evaluation (regression)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"tabular task must be one of {TASKS}, got {self.task!r}")
        if not self.numeric and not self.categorical:
            raise ValueError("tabular spec has no feature columns")
        self.numeric = [c if isinstance(c, NumericColumn) else NumericColumn(**c) for c in self.numeric]
        self.categorical = [c if isinstance(c, CategoricalColumn) else CategoricalColumn(**c) for c in self.categorical]

    @property
    def num_numeric_inputs(self) -> int:
        """Width of x_num: numeric values plus missing indicators."""
        return len(self.numeric) + len(self.indicator_names)

    @property
    def indicator_names(self) -> list[str]:
        """Names of the missing-indicator inputs, in x_num order after the numeric values."""
        return [f"{c.name}__missing" for c in [*self.numeric, *self.categorical] if c.indicator]

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table size per categorical column (vocabulary + the unknown bucket)."""
        return [len(c.vocab) + 1 for c in self.categorical]

    @property
    def feature_names(self) -> list[str]:
        """Raw feature columns a request must carry."""
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def known_columns(self) -> set[str]:
        """Columns a row may carry: features, target, id and dropped columns."""
        return {*self.feature_names, self.target, *self.drop, *([self.id_column] if self.id_column else [])}

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TabularSpec":
        """Build from plain data; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown tabular spec keys {sorted(unknown)}")
        return cls(**dict(data))


def _is_missing(value: Any, nan_is_missing: bool) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    return nan_is_missing and isinstance(value, float) and math.isnan(value)


def parse_number(column: str, value: Any) -> float:
    """A finite float from an int/float/numeric string, else RowError naming the column."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, np.integer, np.floating)):
        raise RowError(column, "wrong_type", f"expected a number, got {type(value).__name__}")
    if isinstance(value, str):
        try:
            number = float(value.strip().replace("_", "x"))  # float() accepts 1_000; a table cell should not
        except ValueError:
            raise RowError(column, "not_a_number", f"cannot parse {value[:50]!r} as a number") from None
    else:
        try:
            number = float(value)
        except OverflowError:
            raise RowError(column, "not_finite", "number too large") from None
    if not math.isfinite(number):
        raise RowError(column, "not_finite", f"{number} is not allowed: send null for a missing value")
    return number


def parse_category(column: str, value: Any) -> str:
    """A category as text; numbers are accepted (CSV reads them as text too), containers are not."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise RowError(column, "not_finite", f"{value} is not a category: send null for a missing value")
        return repr(float(value)) if not float(value).is_integer() else str(int(value))
    if not isinstance(value, str):
        raise RowError(column, "wrong_type", f"expected a string category, got {type(value).__name__}")
    if len(value) > MAX_CATEGORY_CHARS:
        raise RowError(column, "too_long", f"category of {len(value)} characters, limit {MAX_CATEGORY_CHARS}")
    return value.strip()


def check_columns(row: Any, spec: TabularSpec) -> None:
    """Row-level checks: an object, no unknown column, every feature column present (null is allowed)."""
    if not isinstance(row, Mapping):
        raise RowError("row", "not_an_object", f"each row must be a JSON object, got {type(row).__name__}")
    unknown = sorted(str(k) for k in row if k not in spec.known_columns)
    if unknown:
        raise RowError(unknown[0], "unknown_column",
                       f"unknown column (known: {sorted(spec.feature_names)})")
    for name in spec.feature_names:
        if name not in row:
            raise RowError(name, "missing_column", "required column is missing (send null for a missing value)")


def encode_row(row: Mapping[str, Any], spec: TabularSpec, nan_is_missing: bool = False,
               unknown_counts: dict[str, int] | None = None) -> tuple[list[float], list[int]]:
    """One row → (x_num values, x_cat indices); raises RowError naming the column."""
    check_columns(row, spec)
    values: list[float] = []
    flags: list[float] = []
    for col in spec.numeric:
        raw = row[col.name]
        missing = _is_missing(raw, nan_is_missing)
        number = col.median if missing else parse_number(col.name, raw)
        values.append((number - col.mean) / col.std)
        if col.indicator:
            flags.append(1.0 if missing else 0.0)
    indices: list[int] = []
    for cat in spec.categorical:
        raw = row[cat.name]
        missing = _is_missing(raw, nan_is_missing)
        text = cat.most_frequent if missing else parse_category(cat.name, raw)
        index = cat.index.get(text, UNKNOWN)
        if index == UNKNOWN and unknown_counts is not None:
            unknown_counts[cat.name] = unknown_counts.get(cat.name, 0) + 1
        indices.append(index)
        if cat.indicator:
            flags.append(1.0 if missing else 0.0)
    return values + flags, indices


@dataclass
class EncodedRows:
    """The encodable rows of a batch (`index`: their positions) and a RowError per refused position."""

    x_num: np.ndarray
    x_cat: np.ndarray
    index: list[int]
    errors: dict[int, RowError]
    unknown_categories: dict[str, int]


def encode_rows(rows: Sequence[Any], spec: TabularSpec, nan_is_missing: bool = False) -> EncodedRows:
    """Encode every row it can; bad rows are reported per position, never fail the batch."""
    nums: list[list[float]] = []
    cats: list[list[int]] = []
    index: list[int] = []
    errors: dict[int, RowError] = {}
    unknown: dict[str, int] = {}
    for i, row in enumerate(rows):
        try:
            num, cat = encode_row(row, spec, nan_is_missing, unknown)
        except RowError as err:
            errors[i] = err
            continue
        nums.append(num)
        cats.append(cat)
        index.append(i)
    x_num = np.asarray(nums, dtype=np.float32).reshape(len(index), spec.num_numeric_inputs)
    x_cat = np.asarray(cats, dtype=np.int64).reshape(len(index), len(spec.categorical))
    return EncodedRows(x_num, x_cat, index, errors, unknown)


def encode_target(value: Any, spec: TabularSpec) -> float | int:
    """Training target → standardised float (regression) or label index (classification)."""
    if _is_missing(value, nan_is_missing=True):
        raise RowError(spec.target, "missing_target", "target is missing")
    if spec.task == "regression":
        return (parse_number(spec.target, value) - spec.target_mean) / spec.target_std
    label = parse_category(spec.target, value)
    if label not in spec.labels:
        raise RowError(spec.target, "unknown_label", f"label {label!r} is not one of {spec.labels}")
    return spec.labels.index(label)
