"""Tabular report parts shared by both tasks: baselines (linear, random forest, XGBoost, LightGBM) on the same
split and encoding, permutation importance and Captum attributions per feature column."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from core.errors import ConfigError

from runtime.tabular import TabularSpec, encode_rows

BASELINES = ("linear", "random_forest", "xgboost", "lightgbm")


def spec_of(data: Any) -> TabularSpec:
    """The run's fitted TabularSpec (from its datamodule, identical to preprocess.json)."""
    return data.datamodule.spec


def encoded(data: Any, rows: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw rows → the net's inputs, by runtime/tabular.py (the code the handler and scoring run)."""
    enc = encode_rows(rows, spec_of(data), nan_is_missing=True)
    return torch.from_numpy(enc.x_num), torch.from_numpy(enc.x_cat)


def baseline_features(data: Any, split: str) -> np.ndarray:
    """The same imputation/scaling as the net's inputs, with categories one-hot (unknown bucket included)."""
    x_num, x_cat = encoded(data, data.datamodule.split_rows(split))
    blocks = [x_num.numpy().astype(np.float64)]
    for j, size in enumerate(spec_of(data).cardinalities):
        blocks.append(np.eye(size)[x_cat[:, j].numpy()])
    return np.concatenate(blocks, axis=1)


def classification_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 of predicted label indices."""
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)), "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0))}


def explain_tabular_classifier(data: Any, cfg: Any) -> dict[str, Any]:
    """Permutation importance (accuracy) and Captum attributions of the predicted class, per feature column."""
    def predict(rows: list[dict[str, Any]]) -> np.ndarray:
        with torch.no_grad():
            return data.net(*encoded(data, rows)).argmax(-1).numpy()

    perm = permutation_importance(data, "test", lambda y, p: float((y == p).mean()), predict)
    perm["metric"] = "accuracy"
    captum = captum_attributions(data, "test", max(int(cfg.samples), 32), lambda out: out.argmax(-1))
    return {"method": ["permutation importance", captum["method"]], "samples": captum["samples"],
            "ig_steps": 0, "shap_samples": 0, "permutation_importance": perm, "attributions": captum}


def _models(task: str, seed: int) -> dict[str, Any]:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from xgboost import XGBClassifier, XGBRegressor

    if task == "regression":
        return {"linear": Ridge(alpha=1.0),
                "random_forest": RandomForestRegressor(n_estimators=200, min_samples_leaf=3, random_state=seed, n_jobs=1),
                "xgboost": XGBRegressor(n_estimators=200, max_depth=3, learning_rate=0.05, random_state=seed, n_jobs=1),
                "lightgbm": LGBMRegressor(n_estimators=200, num_leaves=15, learning_rate=0.05, random_state=seed,
                                          n_jobs=1, verbose=-1)}
    return {"linear": LogisticRegression(max_iter=2000),
            "random_forest": RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
            "xgboost": XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.1, random_state=seed, n_jobs=1),
            "lightgbm": LGBMClassifier(n_estimators=200, num_leaves=15, learning_rate=0.1, random_state=seed,
                                       n_jobs=1, verbose=-1)}


def run_tabular_baselines(data: Any, score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
                          names: list[str] | tuple[str, ...] = BASELINES) -> dict[str, dict[str, float]]:
    """Fit each baseline on the train split's encoded rows, score on the test split with `score(y, pred)`."""
    dm = data.datamodule
    x_train, x_test = baseline_features(data, "train"), baseline_features(data, "test")
    y_train, y_test = dm.split_targets("train"), dm.split_targets("test")
    models = _models(dm.task, int(data.cfg.get("seed", 0)))
    unknown = sorted(set(names) - set(models))
    if unknown:
        raise ConfigError(f"unknown tabular baselines {unknown}; choose from {list(models)}")
    results = {}
    for name in names:
        started = time.time()
        with threadpool_limits(limits=1):  # small models: one thread is fastest on a shared machine
            model = models[name].fit(x_train, y_train)
            pred = model.predict(x_test)
        results[name] = {**score(y_test, np.asarray(pred)), "fit_seconds": round(time.time() - started, 3)}
    return results


def permutation_importance(data: Any, split: str, metric: Callable[[np.ndarray, np.ndarray], float],
                           predict: Callable[[list[dict[str, Any]]], np.ndarray], repeats: int = 3) -> dict[str, Any]:
    """Per raw feature column: mean drop of `metric` (higher is better) when the column is shuffled."""
    rows = data.datamodule.split_rows(split)
    y = data.datamodule.split_targets(split)
    base = metric(y, predict(rows))
    generator = np.random.default_rng(int(data.cfg.get("seed", 0)))
    importance = {}
    for name in spec_of(data).feature_names:
        drops = []
        for _ in range(repeats):
            order = generator.permutation(len(rows))
            shuffled = [{**row, name: rows[j][name]} for row, j in zip(rows, order)]
            drops.append(base - metric(y, predict(shuffled)))
        importance[name] = {"mean": float(np.mean(drops)), "std": float(np.std(drops))}
    ranked = sorted(importance, key=lambda n: -importance[n]["mean"])
    return {"baseline_score": float(base), "repeats": repeats, "split": split, "columns": importance, "ranking": ranked}


def captum_attributions(data: Any, split: str, samples: int, target: Callable[[torch.Tensor], Any]) -> dict[str, Any]:
    """Captum FeatureAblation per feature column (numeric value, its missing flag, category) on some rows.

    Baselines: 0 for standardised numbers (the training mean), the unknown bucket for categories.
    `target(outputs)` picks what is explained (regression: the prediction; classification: the predicted class).
    """
    from captum.attr import FeatureAblation

    spec = spec_of(data)
    rows = data.datamodule.split_rows(split)[:samples]
    x_num, x_cat = encoded(data, rows)
    net = data.net
    with torch.no_grad():
        tgt = target(net(x_num, x_cat))
    ablation = FeatureAblation(lambda a, b: net(a, b))
    attr_num, attr_cat = ablation.attribute((x_num, x_cat), baselines=(0.0, 0), target=tgt)
    names = [c.name for c in spec.numeric] + spec.indicator_names
    per_feature = {n: float(attr_num[:, i].abs().mean()) for i, n in enumerate(names)}
    per_feature.update({c.name: float(attr_cat[:, j].float().abs().mean()) for j, c in enumerate(spec.categorical)})
    return {"method": "captum.attr.FeatureAblation", "samples": len(rows), "mean_abs_attribution": per_feature,
            "ranking": sorted(per_feature, key=lambda n: -per_feature[n])}
