"""Schema and columns of the data: table columns and dtypes (text), item kind and labels (images)."""
from __future__ import annotations

from typing import Any


def schema(dm: Any) -> dict[str, Any]:
    """Columns with dtype and distinct-value counts per source table; which columns the datamodule uses."""
    tables = {}
    for path in [p for p in (getattr(dm, "train_file", None), getattr(dm, "test_file", None)) if p]:
        from datamodules.text import read_table

        frame = read_table(path, getattr(dm, "na_values", None))
        tables[path.name] = {"rows": len(frame), "columns": {c: {"dtype": str(frame[c].dtype), "distinct": int(frame[c].nunique())}
                                                              for c in frame.columns}}
    used = {k: getattr(dm, k) for k in ("text_column", "label_column", "id_column") if hasattr(dm, k)}
    if tables:
        summary = "; ".join(f"{name}: {t['rows']} rows, columns {list(t['columns'])}" for name, t in tables.items())
    else:
        summary = f"{len(dm.item_ids)} images, {len(dm.labels)} classes"
    return {"status": "ok", "summary": summary, "datamodule": type(dm).__name__, "tables": tables, "used_columns": used,
            "labels": list(dm.labels), "items": len(dm.item_ids), "total_records": dm.total_records}
