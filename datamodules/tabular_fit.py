"""Column roles (from config or inferred from the data) and fitting the tabular preprocessing on training rows."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from core.errors import ConfigError, DataError
from runtime.tabular import CategoricalColumn, NumericColumn, RowError, TabularSpec, parse_category, parse_number

NUMERIC_SHARE = 0.95        # a column is numeric when this share of its non-missing cells parse as numbers
REGRESSION_MIN_DISTINCT = 20  # a numeric target with fewer distinct (integer) values is a class label
HIGH_CARDINALITY_SHARE = 0.5  # string columns with more distinct values than this share of rows are dropped


@dataclass
class Roles:
    """Which column plays which part, and why (written to the run directory as data/tabular_roles.json)."""

    task: str
    target: str
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    id_column: str | None = None
    inferred: dict[str, str] = field(default_factory=dict)  # column -> reason, for what was not configured


def is_missing(value: Any) -> bool:
    """None, NaN (pandas' missing) or an empty/blank string."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def _number_share(values: Sequence[Any]) -> tuple[float, int]:
    present = [v for v in values if not is_missing(v)]
    ok = 0
    for v in present:
        try:
            parse_number("", v)
            ok += 1
        except RowError:
            pass
    return (ok / len(present) if present else 0.0), len(present)


def infer_roles(columns: dict[str, list[Any]], target: str, task: str | None, numeric: Sequence[str] | None,
                categorical: Sequence[str] | None, drop: Sequence[str] | None, id_column: str | None) -> Roles:
    """Configured roles win; every other column gets a role from its values, with the reason recorded."""
    if target not in columns:
        raise ConfigError(f"datamodule.target={target!r} is not a column of the table; its columns: {sorted(columns)}")
    configured = {*(numeric or []), *(categorical or []), *(drop or []), *([id_column] if id_column else [])}
    missing = sorted(c for c in configured if c not in columns)
    if missing:
        raise ConfigError(f"datamodule.numeric/categorical/drop/id_column name {missing}, not columns of the table; "
                          f"its columns: {sorted(columns)}")
    roles = Roles(task=task or "", target=target, numeric=list(numeric or []), categorical=list(categorical or []),
                  drop=list(drop or []), id_column=id_column)
    if task is None:
        share, _ = _number_share(columns[target])
        distinct = {v for v in columns[target] if not is_missing(v)}
        integral = share >= 1.0 and all(float(parse_number(target, v)).is_integer() for v in distinct)
        roles.task = "regression" if share >= 1.0 and not (integral and len(distinct) < REGRESSION_MIN_DISTINCT) \
            else "classification"
        roles.inferred["task"] = (f"{roles.task}: target {target!r} has {len(distinct)} distinct values"
                                  f"{', all numbers' if share >= 1.0 else ', not all numbers'}")
    for name, values in columns.items():
        if name == target or name in configured:
            continue
        share, present = _number_share(values)
        distinct = len({str(v).strip() for v in values if not is_missing(v)})
        if id_column is None and name.lower() in ("id", "row_id", "index") and distinct == len(values):
            roles.id_column = name
            roles.inferred[name] = "id: named like an id and unique per row"
        elif present == 0:
            roles.drop.append(name)
            roles.inferred[name] = "drop: no values"
        elif share >= NUMERIC_SHARE:
            roles.numeric.append(name)
            roles.inferred[name] = f"numeric: {share:.0%} of {present} values parse as numbers"
        elif distinct > max(20, HIGH_CARDINALITY_SHARE * present):
            roles.drop.append(name)
            roles.inferred[name] = f"drop: free text ({distinct} distinct strings in {present} values)"
        else:
            roles.categorical.append(name)
            roles.inferred[name] = f"categorical: {distinct} distinct strings"
    if not roles.numeric and not roles.categorical:
        raise ConfigError("no feature columns left: set datamodule.numeric / datamodule.categorical")
    return roles


def fit_spec(rows: Sequence[dict[str, Any]], roles: Roles, labels: list[str], min_frequency: int,
             targets: Sequence[float] | None = None) -> TabularSpec:
    """Fit imputation, scaling, vocabularies (and target scaling) on the TRAINING rows only."""
    numeric = []
    for name in roles.numeric:
        present = np.array([parse_number(name, r[name]) for r in rows if not is_missing(r[name])], dtype=np.float64)
        if present.size == 0:
            raise DataError(f"numeric column {name!r} has no value in the training split: drop it (datamodule.drop=[{name}])")
        median = float(np.median(present))
        filled = np.concatenate([present, np.full(len(rows) - present.size, median)])
        std = float(filled.std())
        numeric.append(NumericColumn(name=name, median=median, mean=float(filled.mean()), std=std if std > 1e-12 else 1.0,
                                     indicator=present.size < len(rows), min=float(present.min()), max=float(present.max())))
    categorical = []
    for name in roles.categorical:
        present = [parse_category(name, r[name]) for r in rows if not is_missing(r[name])]
        counts = Counter(present)
        if not counts:
            raise DataError(f"categorical column {name!r} has no value in the training split: drop it (datamodule.drop=[{name}])")
        # most common first, ties by name: the order (and so the embedding rows) is reproducible
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        vocab = [value for value, n in ordered if n >= min_frequency]
        categorical.append(CategoricalColumn(name=name, vocab=vocab, most_frequent=ordered[0][0],
                                             indicator=len(present) < len(rows)))
    spec = TabularSpec(task=roles.task, target=roles.target, numeric=numeric, categorical=categorical,
                       id_column=roles.id_column, drop=roles.drop, labels=labels)
    if roles.task == "regression":
        y = np.asarray(targets, dtype=np.float64)
        spec.target_mean = float(y.mean())
        spec.target_std = float(y.std()) if float(y.std()) > 1e-12 else 1.0
    return spec
