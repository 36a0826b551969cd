"""Scoring fixtures: digit PNGs and ticket texts (generated once per session), planted bad records, helpers.

The trained + exported models come from `tests/exported_runs.py` (`exported_digits`, `exported_text`),
shared with the serving tests: nothing is trained twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

N_DIGITS = 300


@dataclass(frozen=True)
class DigitImages:
    """A folder of real digit PNGs (scikit-learn digits) and their labels."""

    folder: Path
    names: list[str]


@pytest.fixture(scope="session")
def digit_pngs(tmp_path_factory: pytest.TempPathFactory) -> DigitImages:
    """N_DIGITS real 8x8 digit images as PNG files, written once per session (treat as read-only)."""
    from datamodules.digits import digits_images

    folder = tmp_path_factory.mktemp("digit_pngs")
    images, _ = digits_images()
    names = []
    for i, image in enumerate(images[:N_DIGITS]):
        name = f"d{i:04d}.png"
        image.save(folder / name)
        names.append(name)
    return DigitImages(folder, names)


# planted bad image records: file name → bytes (None: listed but missing), and the reason code expected
BAD_IMAGES = {
    "bad_garbage.png": (b"this is not an image at all", "bad_image"),
    "bad_empty.png": (b"", "empty_input"),
    "bad_truncated.png": (None, "bad_image"),  # filled with a cut PNG below
    "bad_missing.png": (None, "missing_file"),
}


def plant_bad_images(folder: Path, good_png: Path) -> dict[str, str]:
    """Write the bad image files into `folder` (the missing one is not written); returns name → reason code."""
    for name, (data, _) in BAD_IMAGES.items():
        if name == "bad_truncated.png":
            data = good_png.read_bytes()[:40]
        if data is not None:
            (folder / name).write_bytes(data)
    return {name: code for name, (_, code) in BAD_IMAGES.items()}


@pytest.fixture(scope="session")
def ticket_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The bundled test tickets as JSONL with an id column, plus planted bad rows (id → reason code)."""
    frame = pd.read_csv(REPO / "data" / "support_tickets" / "test.csv", dtype=str)
    rows = [{"ticket": r.id, "body": r.text} for r in frame.itertuples()]
    bad = {"bad-empty": ("", "empty_input"), "bad-blank": ("   \n ", "empty_input"),
           "bad-number": (12345, "wrong_type"), "bad-null": (None, "missing_value")}
    rows[5:5] = [{"ticket": k, "body": v} for k, (v, _) in bad.items()]
    path = tmp_path_factory.mktemp("tickets") / "tickets.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, {k: code for k, (_, code) in bad.items()}


def rows_by_id(rows: list[dict]) -> dict[str, dict]:
    """Output rows keyed by id (asserting ids are unique)."""
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows), "duplicate ids in the output"
    return by_id
