"""Write a handful of scikit-learn digits as PNG files into data/digits_samples/ (what `make demo` sends).

    PYTHONPATH=. .venv/bin/python scripts/make_digit_samples.py

Uses `datamodules.digits.digits_images` (the 8x8 'L' images training sees) and names each file
`<index>_digit<label>.png`, so a demo can check answers against the file name. Indices are the last
images of the data set, taken one per class, deterministic.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "data" / "digits_samples"
PER_CLASS = 1


def main() -> int:
    """Write one PNG per digit class."""
    sys.path.insert(0, str(REPO))
    from datamodules.digits import digits_images

    images, labels = digits_images()
    OUT.mkdir(parents=True, exist_ok=True)
    taken: dict[int, int] = {}
    for index in range(len(images) - 1, -1, -1):
        label = labels[index]
        if taken.get(label, 0) >= PER_CLASS:
            continue
        taken[label] = taken.get(label, 0) + 1
        buf = io.BytesIO()
        images[index].save(buf, format="PNG", optimize=True)
        (OUT / f"{index:04d}_digit{label}.png").write_bytes(buf.getvalue())
    print(f"wrote {sum(taken.values())} PNG digits to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
