"""Batch scoring of tabular models with the handler's own code: runtime/tabular.py encodes each row,
runtime/tabular_io.py turns outputs into answers (de-standardised predictions + conformal interval, or
label/probability/top_k), so scored == served by construction. A bad row (wrong type, unknown column,
NaN/Infinity, ...) is rejected with its column named, never stops the job."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from runtime.preprocessing import BadInputError, PreprocessSpec
from datamodules.tabular import frame_rows
from runtime.tabular import RowError, TabularSpec, encode_row
from runtime.tabular_io import predictions_from_outputs
from serving.scoring.config import InputError


def tabular_spec(spec: PreprocessSpec) -> TabularSpec:
    """The fitted TabularSpec inside a served preprocess.json."""
    return TabularSpec.from_dict(spec.tabular)


def read_tabular_records(path: Path, spec: PreprocessSpec, id_column: str | None) -> tuple[list[str], list[dict]]:
    """Ids (columns.id, else the model's id column, else row numbers) and raw row dicts, read as in training."""
    table = tabular_spec(spec)
    try:
        rows = frame_rows(path)  # the training reader: only empty cells are missing
    except ValueError as err:
        raise InputError(f"input={path} cannot be read as a table: {err}") from err
    column = id_column or table.id_column
    if rows and column and column not in rows[0]:
        if id_column:
            raise InputError(f"input={path} has no column {column!r} (set columns.id=NAME); its columns are {list(rows[0])}")
        column = None
    if column:
        missing = [i for i, r in enumerate(rows) if r.get(column) is None]
        if missing:
            raise InputError(f"input={path}: column {column!r} is empty in rows {missing[:10]}: every record needs an id")
        ids = [str(int(r[column])) if isinstance(r[column], float) and r[column].is_integer() else str(r[column])
               for r in rows]
    else:
        ids = [str(i) for i in range(len(rows))]
    return ids, rows


class TabularPreparer:
    """Row dict → (x_num values, x_cat indices); RowError becomes BadInputError naming the column (picklable)."""

    def __init__(self, spec: PreprocessSpec) -> None:
        self.spec = tabular_spec(spec)

    def __call__(self, row: Any) -> tuple[list[float], list[int]]:
        try:
            return encode_row(row, self.spec, nan_is_missing=True)  # a table's NaN is a missing cell
        except RowError as err:
            raise BadInputError(f"column {err.column!r}: {err.message}", code=err.code) from None


def collate_rows(items: list[tuple[list[float], list[int]]]) -> dict[str, torch.Tensor]:
    """Encoded rows → the net's inputs."""
    x_num = torch.tensor(np.asarray([i[0] for i in items], dtype=np.float32).reshape(len(items), -1))
    x_cat = torch.tensor(np.asarray([i[1] for i in items], dtype=np.int64).reshape(len(items), -1))
    return {"x_num": x_num, "x_cat": x_cat}


def tabular_predictions(net: Any, inputs: dict[str, torch.Tensor], spec: PreprocessSpec, top_k: int,
                        device: torch.device) -> list[dict[str, Any]]:
    """One forward + the handler's answers."""
    with torch.inference_mode():
        outputs = net(inputs["x_num"].to(device), inputs["x_cat"].to(device)).float().cpu().numpy()
    return predictions_from_outputs(outputs, tabular_spec(spec), top_k=top_k, temperature=spec.temperature)
