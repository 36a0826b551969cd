"""Small trained + exported runs (train.py, export.py as real subprocesses) for the serving, scoring and LM figures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.common import REPO
from core.rundir import RunDir


@dataclass(frozen=True)
class Exported:
    """Paths of the exported run: TorchScript model, its export folder, the `.mar`, one request body."""

    export_dir: Path
    model_pt: Path
    mar: Path
    sample: Path            # one request body: a bundled PNG, a JSON ticket (text), or none


def _run(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "SHIPYARD_EVALUATE": "false"}
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def _train_and_export(root: Path, experiment: str, train_args: list[str], parity_batches: int) -> Exported:
    """train.py + export.py (version 1.0, parity checked) as subprocesses; the export's paths (no sample)."""
    _run(["train.py", f"+experiment={experiment}", f"paths.output_root={root}", "run_id=bench",
          "callbacks.progress_bar=null", "logger=csv", *train_args])
    run_dir = root / experiment / "bench"
    _run(["export.py", f"run_dir={run_dir}", "version=1.0", f"parity.batches={parity_batches}"])
    export = RunDir(run_dir).export
    report = json.loads(export.export_json_path.read_text())
    return Exported(export.path, export.scripted_model_path, export.path / report["archive"]["path"], Path())


def train_and_export_digits(root: Path) -> Exported:
    """digits_cnn, 2 short epochs, exported as version 1.0 with parity checked; a bundled PNG as the sample."""
    exported = _train_and_export(root, "digits_cnn", ["trainer.max_epochs=2", "trainer.limit_train_batches=10",
                                                      "trainer.limit_val_batches=2", "trainer.limit_test_batches=2"], 2)
    samples = sorted((REPO / "data" / "digits_samples").glob("*.png"))
    return replace(exported, sample=samples[0])


def train_and_export_minilm(root: Path) -> Exported:
    """text_minilm (the packaged pretrained MiniLM), 2 steps (serving speed does not depend on accuracy), 1.0."""
    exported = _train_and_export(root, "text_minilm", ["trainer.max_steps=2", "trainer.limit_val_batches=1",
                                                       "trainer.limit_test_batches=1", "test_after_fit=false"], 1)
    body = root / "ticket.json"
    body.write_text(json.dumps({"text": "I was charged twice for my subscription this month"}))
    return replace(exported, sample=body)


def train_and_export_lm(root: Path) -> Exported:
    """lm_llama_tiny, a few steps (weights barely matter for serving speed), exported as version 1.0."""
    return _train_and_export(root, "lm_llama_tiny", ["trainer.max_steps=4", "trainer.limit_val_batches=1",
                                                     "trainer.val_check_interval=4", "test_after_fit=false",
                                                     "datamodule.seq_len=128"], 1)


def digits_png_folder(root: Path, count: int = 512) -> Path:
    """`count` real digit images as PNGs in class folders (a scoring input)."""
    from datamodules.digits import digits_images

    images, labels = digits_images()
    for i in range(count):
        folder = root / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        images[i].save(folder / f"{i}.png")
    return root
