"""Fixtures of the evaluation tests: a PNG checker and tiny trained runs (one per session)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_entry

CONSOLE_TXT = "console.txt"  # beside the digits_run fixture's output root's experiment folder


def assert_valid_png(path: Path) -> None:
    """PIL opens it, it has pixels, and they are not all one colour."""
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 0 and image.size[1] > 0
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 0, f"{path} is a blank image"


@pytest.fixture
def check_png() -> Callable[[Path], None]:
    return assert_valid_png


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits_cnn trained briefly by train.py with evaluate=true (the after-training evaluation path)."""
    root = tmp_path_factory.mktemp("eval_digits")
    proc = run_entry("train.py", "+experiment=digits_cnn", f"paths.output_root={root}", "run_id=tiny",
                     "trainer.max_epochs=2", "evaluate=true")
    assert "evaluation: test acc" in proc.stdout, proc.stdout[-3000:]
    # what a user saw (tests/evaluation/test_readable_output.py reads it): stdout, then stderr
    (root / CONSOLE_TXT).write_text(proc.stdout + "\n" + proc.stderr)
    return root / "digits_cnn" / "tiny"


@pytest.fixture(scope="session")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """text_transformer (the small from-config transformer) trained a few batches; evaluation left to the test."""
    root = tmp_path_factory.mktemp("eval_text")
    run_entry("train.py", "+experiment=text_transformer", f"paths.output_root={root}", "run_id=tiny",
              "trainer.max_epochs=1", "trainer.limit_train_batches=4", "callbacks.progress_bar=null", "evaluate=false")
    return root / "text_transformer" / "tiny"
