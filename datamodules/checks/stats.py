"""Distribution statistics and their plots: image sizes and modes, text lengths, classes per split."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.checks.items import DataItems


def _describe(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"min": float(a.min()), "p05": float(np.percentile(a, 5)), "median": float(np.median(a)),
            "mean": float(a.mean()), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def image_stats(items: DataItems) -> dict[str, Any]:
    """Sizes, modes and mean intensity of the images."""
    sizes, modes, intensity = [], Counter(), []
    for i in range(len(items.ids)):
        image = items.load(i)
        sizes.append(image.size)
        modes[image.mode] += 1
        intensity.append(float(np.asarray(image.convert("L"), dtype=np.float32).mean() / 255.0))
    widths, heights = [s[0] for s in sizes], [s[1] for s in sizes]
    distinct = Counter(f"{w}x{h}" for w, h in sizes)
    return {"status": "ok", "summary": f"{len(distinct)} distinct sizes (most common {distinct.most_common(1)[0][0]}), "
                                       f"modes {dict(modes)}",
            "width": _describe(widths), "height": _describe(heights), "modes": dict(modes),
            "sizes": dict(distinct.most_common(10)), "intensity": _describe(intensity), "_values": intensity}


def text_stats(items: DataItems) -> dict[str, Any]:
    """Characters and words per text, overall and per split."""
    chars = [len(items.load(i)) for i in range(len(items.ids))]
    words = [len(items.load(i).split()) for i in range(len(items.ids))]
    per_split = {s: _describe([words[i] for i in items.indices(s)]) for s in ("train", "val", "test") if items.indices(s)}
    empty = sum(1 for w in words if w == 0)
    return {"status": "warn" if empty else "ok",
            "summary": f"words per text median {np.median(words):g} (p95 {np.percentile(words, 95):g}), {empty} empty",
            "chars": _describe(chars), "words": _describe(words), "words_per_split": per_split, "_values": words}


def plot_distributions(items: DataItems, stats: dict[str, Any], balance: dict[str, Any], out_dir: Path) -> list[str]:
    """class_balance.png and a length / intensity histogram per split; returns the file names."""
    from core.figures import new_figure, save_png

    fig, ax = new_figure(max(6, 0.6 * len(items.label_names) + 3), 4)
    x = np.arange(len(items.label_names))
    for offset, split in zip((-0.27, 0, 0.27), ("train", "val", "test")):
        ax.bar(x + offset, [balance["counts"][split][lab] for lab in items.label_names], width=0.27, label=split)
    ax.set_xticks(x, items.label_names, rotation=45 if len(x) > 8 else 0)
    ax.set_title("Items per class and split")
    ax.legend()
    names = [save_png(fig, out_dir / "class_balance.png").name]
    values = np.asarray(stats["_values"])
    fig, ax = new_figure(7, 4)
    for split in ("train", "val", "test"):
        idx = items.indices(split)
        if idx:
            ax.hist(values[idx], bins=30, alpha=0.5, label=split, density=True)
    ax.set_xlabel("words per text" if items.kind == "text" else "mean intensity (0..1)")
    ax.set_title("Text length per split" if items.kind == "text" else "Image intensity per split")
    ax.legend()
    names.append(save_png(fig, out_dir / ("text_length.png" if items.kind == "text" else "image_intensity.png")).name)
    return names
