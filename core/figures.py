"""Matplotlib figures written as PNG (headless Agg backend, atomic writes)."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers, Slurm nodes and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from core.atomic import atomic_write_bytes  # noqa: E402


def new_figure(width: float = 6.0, height: float = 4.5, rows: int = 1, cols: int = 1):
    """A figure and its axes (squeezed like plt.subplots)."""
    return plt.subplots(rows, cols, figsize=(width, height))


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Render a figure to PNG bytes, write atomically, close the figure."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
