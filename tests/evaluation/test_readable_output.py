"""What a user reads: train.py's console, TensorBoard's HParams, the report's figures and its verdict."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from evaluation.classification import confusion_figure
from evaluation.explain import NEGATIVE, POSITIVE, token_attribution_figure
from evaluation.success import NOT_SET, run_success, verdict
from tests.evaluation.conftest import CONSOLE_TXT

INFO = re.compile(r"^(?:\[[^\]]*\]\[[^\]]*\]\[INFO\] - |INFO: )(?P<message>.*)$")


def _console(digits_run: Path) -> str:
    return (digits_run.parent.parent / CONSOLE_TXT).read_text()


@pytest.mark.slow
def test_console_of_a_two_epoch_run(digits_run: Path) -> None:
    """Each INFO line once, no litlogger tip, 1-based epochs, one summary line per epoch."""
    text = _console(digits_run)
    messages = [m["message"] for line in text.splitlines() if (m := INFO.match(line.strip()))]
    assert any("run directory" in m for m in messages), text[-3000:]
    twice = {m: n for m, n in Counter(messages).items() if n > 1 and not m.startswith(("Restoring", "Loaded"))}
    assert not twice, f"printed more than once: {twice}"
    assert "litlogger" not in text and "💡" not in text
    # Lightning warned at each cluster-environment detection (config check, then the Trainer) where srun exists
    assert text.count("The `srun` command is available") <= 1, text[-3000:]
    assert "Epoch 2/2" in text and "Epoch 1/1" not in text  # the bar of the last of 2 epochs
    summaries = [line for line in text.splitlines() if re.search(r"\bepoch [12]/2: ", line)]
    assert len(summaries) == 2, summaries
    for line in summaries:  # one line holds the whole epoch: train and validation metrics
        assert "train/loss" in line and "val/acc" in line and "val/loss" in line
    bar = [line for line in text.splitlines() if line.startswith("Epoch 2/2")]
    assert bar and "val/acc" not in bar[-1]  # the bar shows the step loss only: no metrics wrapped over lines


@pytest.mark.slow
def test_tensorboard_hparams_hold_config_and_final_metrics(digits_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(digits_run / "tb"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    data = {tag.rsplit("/", 1)[-1]: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    hparams = data["session_start_info"].session_start_info.hparams
    assert hparams["model/optimizer/lr"].number_value == pytest.approx(1e-3) or "model/optimizer/lr" in hparams
    assert hparams["trainer/max_epochs"].number_value == 2 and hparams["seed"].number_value == 42
    metric_tags = {m.name.tag for m in data["experiment"].experiment.metric_infos}
    assert {"test/acc", "val/acc", "test/loss"} <= metric_tags
    assert {"test/acc", "val/acc"} <= set(events.Tags()["scalars"])
    saved = OmegaConf.load(digits_run / "tb" / "hparams.yaml")
    assert saved.trainer.max_epochs == 2 and "optimizer" in saved.model


def _overlaps(boxes: list) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(len(boxes) - 1) if boxes[i].overlaps(boxes[i + 1])]


def test_confusion_matrix_names_do_not_overlap() -> None:
    labels = [f"customer_category_{k:02d}" for k in range(12)]
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(labels), 300)
    fig = confusion_figure(y, np.where(rng.random(300) < 0.7, y, rng.integers(0, len(labels), 300)), labels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        assert len(boxes) == len(labels)
        assert not _overlaps(boxes), f"x tick labels overlap: {_overlaps(boxes)}"
    small = confusion_figure(np.array([0, 1, 2]), np.array([0, 1, 1]), ["a", "b", "c"])
    assert fig.get_size_inches()[0] > small.get_size_inches()[0]  # sized by the class count


def test_token_attributions_keep_positions_and_sign() -> None:
    sample = {"true": "billing", "pred": "billing",
              "integrated_gradients": [["refund", 0.5, 3], ["the", -0.3, 1], ["the", 0.2, 5]],
              "kernel_shap": [["not", -0.4, 2], ["refund", 0.1, 3]]}
    fig = token_attribution_figure([sample])
    ig_ax, shap_ax = fig.axes[:2]
    assert len(ig_ax.patches) == 3  # both positions of "the" get their own bar
    colours = {round(p.get_width(), 5): p.get_facecolor() for p in ig_ax.patches}
    from matplotlib.colors import to_rgba

    assert colours[-0.3] == to_rgba(NEGATIVE) and colours[0.5] == to_rgba(POSITIVE) and colours[0.2] == to_rgba(POSITIVE)
    assert [t.get_text() for t in ig_ax.get_yticklabels()].count("the @1") == 1
    assert shap_ax.patches[-1].get_facecolor() == to_rgba(NEGATIVE)  # largest |attribution| on top


def test_no_default_success_threshold() -> None:
    report = {"classification": {"test": {"accuracy": 0.42, "macro": {"f1": 0.4, "precision": 0.4, "recall": 0.4},
                                           "weighted": {"f1": 0.4}}}}
    default = OmegaConf.structured({"metric": "test/acc", "threshold": None, "mode": "max"})
    plain_run = OmegaConf.create({"name": "own_data", "success": None})
    assert verdict(report, *run_success(default, plain_run))["verdict"] == NOT_SET
    strict_run = OmegaConf.create({"success": {"metric": "test/acc", "threshold": 0.9, "mode": "max"}})
    assert verdict(report, *run_success(default, strict_run))["verdict"] == "FAIL"  # the experiment set one
    explicit = OmegaConf.create({"metric": "test/acc", "threshold": 0.4, "mode": "max"})
    assert verdict(report, *run_success(explicit, strict_run))["verdict"] == "PASS"  # evaluate.py's own wins
    from evaluation.config import load_default

    assert load_default("somewhere").success.threshold is None
