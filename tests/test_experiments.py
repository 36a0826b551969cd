"""Every experiment composes and runs end to end with fast_dev_run (real Hydra, Lightning, data)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import EXPERIMENTS, REPO, run_entry


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
                "regression": {"val/rmse", "test/rmse", "test/mae", "test/r2"},
                "language_modeling": {"val/loss", "val/perplexity", "test/loss", "test/perplexity"}}
# the GPU configuration, shrunk to run on this CPU (same strategy, bf16 FSDP2 policy, checkpointing, compile off)
SHRUNK_350M = ["trainer.accelerator=cpu", "trainer.devices=1", "datamodule.seq_len=64", "datamodule.batch_size=2",
               "datamodule.num_workers=0", "datamodule.pin_memory=false", "model.compile=false",
               "model.net.config.hidden_size=64", "model.net.config.intermediate_size=128",
               "model.net.config.num_hidden_layers=2", "model.net.config.num_attention_heads=4",
               "model.net.config.num_key_value_heads=2"]


def lm_run_to_finetune(root):
    """A 1-step lm_llama_tiny run (a checkpoint to continue) and a user text tokenized with its tokenizer."""
    run_entry("train.py", "+experiment=lm_llama_tiny", "trainer.max_steps=1", "trainer.limit_val_batches=1",
              "trainer.val_check_interval=1",
              "test_after_fit=false", "datamodule.seq_len=32", f"paths.output_root={root}", "run_id=base")
    run_dir = root / "lm_llama_tiny" / "base"
    text = root / "mine.jsonl"  # one document per line
    text.write_text("".join(json.dumps({"text": f"def handler_{i}(request):\n    return {{'id': {i}, 'ok': True}}\n" * 4}) + "\n"
                            for i in range(60)))
    subprocess.run([sys.executable, "-m", "datamodules.tokenize", f"input={text}", f"output={root / 'tokens'}",
                    f"tokenizer={run_dir / 'data' / 'tokenizer'}"], cwd=REPO, check=True, capture_output=True)
    return [f"model.init_from={run_dir}", f"datamodule.data_dir={root / 'tokens'}", "datamodule.seq_len=32"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(experiment, tmp_path):
    extra = []
    if experiment == "imagefolder_cnn":
        extra = [f"datamodule.root={make_image_folder(tmp_path / 'images')}", "datamodule.num_workers=0"]
    elif experiment == "lm_llama_350m":
        extra = SHRUNK_350M
    elif experiment == "lm_llama_finetune":
        extra = lm_run_to_finetune(tmp_path / "base")
    proc = run_entry("train.py", f"+experiment={experiment}", "trainer.fast_dev_run=true",
                     f"paths.output_root={tmp_path / 'out'}", "run_id=fdr", *extra)
    run_dir = tmp_path / "out" / experiment / "fdr"
    assert f"run directory: {run_dir}" in proc.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "run.json").read_text())
    expected = TASK_METRICS.get(info["task"], set())
    assert expected and expected <= set(metrics), (info["task"], sorted(metrics))
    assert info["run_id"] == "fdr" and isinstance(info["seed"], int) and len(info["data_fingerprint"]) == 64
    artifact = "data/tokenizer/tokenizer.json" if info["task"] == "language_modeling" else "preprocess.json"
    assert (run_dir / "config.yaml").exists() and (run_dir / artifact).exists()
