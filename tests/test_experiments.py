"""Every experiment composes and runs end to end with fast_dev_run (real Hydra, Lightning, data)."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.conftest import EXPERIMENTS, run_entry


def make_image_folder(root, per_class=6):
    """A tiny ImageFolder: 3 classes of RGB and grayscale images of different sizes."""
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = Image.new("RGB", (20 + 3 * i, 16 + 2 * i), colour)
            if i % 3 == 0:
                image = image.convert("L")
            image.save(root / name / f"{i}.png")
    return root


TASK_METRICS = {"classification": {"val/acc", "test/acc", "test/f1_macro"},
                "regression": {"val/rmse", "test/rmse", "test/mae", "test/r2"}}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(experiment, tmp_path):
    extra = []
    if experiment == "imagefolder_cnn":
        extra = [f"datamodule.root={make_image_folder(tmp_path / 'images')}", "datamodule.num_workers=0"]
    proc = run_entry("train.py", f"+experiment={experiment}", "trainer.fast_dev_run=true",
                     f"paths.output_root={tmp_path / 'out'}", "run_id=fdr", *extra)
    run_dir = tmp_path / "out" / experiment / "fdr"
    assert f"run directory: {run_dir}" in proc.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "run.json").read_text())
    expected = TASK_METRICS.get(info["task"], set())
    assert expected and expected <= set(metrics), (info["task"], sorted(metrics))
    assert info["run_id"] == "fdr" and isinstance(info["seed"], int) and len(info["data_fingerprint"]) == 64
    assert (run_dir / "config.yaml").exists() and (run_dir / "preprocess.json").exists()
