"""Repeated-sample drift experiments on real digits + a trained model (shared by the drift tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from datamodules.digits import digits_images
from runtime.preprocessing import PreprocessSpec, image_to_tensor
from serving.monitoring.drift import DriftThresholds, compare
from serving.monitoring.reference import load_run_model
from serving.monitoring.window import feature_names
from runtime.prediction_features import image_features, logit_features


@torch.no_grad()
def feature_table(run_dir: Path, images: list[Image.Image]) -> dict[str, list]:
    """Logged-feature columns for images, exactly as the image handler computes them."""
    spec = PreprocessSpec.load(run_dir / "preprocess.json")
    model = load_run_model(run_dir)
    logits = model(torch.stack([image_to_tensor(im, spec) for im in images]))
    cols: dict[str, list] = {}
    for im, lf, pred in zip(images, logit_features(logits, spec.temperature), logits.argmax(-1).tolist()):
        for k, v in {**image_features(im), **lf, "prediction": spec.labels[pred]}.items():
            cols.setdefault(k, []).append(v)
    return cols


def darken(image: Image.Image) -> Image.Image:
    """A planted covariate shift: a dimmer, lower-contrast scanner."""
    return ImageEnhance.Brightness(image).enhance(0.6)


def subset(cols: dict[str, list], idx: np.ndarray) -> dict[str, list]:
    return {k: [v[i] for i in idx] for k, v in cols.items()}


def simulate(run_dir: Path, reps: int = 200, n_ref: int = 150, n_cur: int = 60, seed: int = 0,
             th: DriftThresholds | None = None) -> dict[str, float]:
    """Alarm rates over `reps` repetitions: no drift, covariate shift, label shift."""
    th = th or DriftThresholds()
    images, labels = digits_images()
    labels = np.array(labels)
    base = feature_table(run_dir, images)
    shifted = feature_table(run_dir, [darken(im) for im in images])
    numeric, categorical = feature_names("image")
    rng = np.random.default_rng(seed)
    alarms = {"none": 0, "covariate": 0, "label": 0}
    skew = np.where(labels <= 2, 1.0, 0.08)  # planted label shift: classes 0-2 dominate the window
    for _ in range(reps):
        perm = rng.permutation(len(images))
        ref_idx, rest = perm[:n_ref], perm[n_ref:]
        cur_idx = rest[:n_cur]
        ref = subset(base, ref_idx)
        alarms["none"] += compare(ref, subset(base, cur_idx), numeric, categorical, th).drifted
        alarms["covariate"] += compare(ref, subset(shifted, cur_idx), numeric, categorical, th).drifted
        p = skew[rest] / skew[rest].sum()
        lab_idx = rng.choice(rest, size=n_cur, replace=False, p=p)
        alarms["label"] += compare(ref, subset(base, lab_idx), numeric, categorical, th).drifted
    return {k: v / reps for k, v in alarms.items()}
