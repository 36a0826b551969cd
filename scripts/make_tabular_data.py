"""Write the bundled tables (data/tabular/): scikit-learn's diabetes and the palmerpenguins table, offline.

    PYTHONPATH=. .venv/bin/python scripts/make_tabular_data.py

Both come from files inside installed packages (no download); an `id` column is added per row.
Missing cells are written as empty cells, the only thing datamodule=tabular reads as missing.
"""
from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "tabular"


def main() -> None:
    """diabetes.csv (442 rows, 10 numbers, regression) and penguins.csv (344 rows, categoricals + missing values)."""
    from palmerpenguins import load_penguins
    from sklearn.datasets import load_diabetes

    OUT.mkdir(parents=True, exist_ok=True)
    diabetes = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    diabetes.insert(0, "id", [f"d{i:03d}" for i in range(len(diabetes))])
    diabetes.to_csv(OUT / "diabetes.csv", index=False, float_format="%.6g")
    penguins = load_penguins()
    penguins.insert(0, "id", [f"p{i:03d}" for i in range(len(penguins))])
    penguins.to_csv(OUT / "penguins.csv", index=False, na_rep="")
    print(f"wrote {OUT / 'diabetes.csv'} ({len(diabetes)} rows), {OUT / 'penguins.csv'} ({len(penguins)} rows)")


if __name__ == "__main__":
    main()
