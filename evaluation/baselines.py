"""Classic scikit-learn baselines on the run's own split, and the deep model's margin over the best."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from core.figures import new_figure, save_png
from core.errors import ConfigError

BASELINES = ("logistic_regression", "random_forest", "gradient_boosting")
METRICS = ("accuracy", "f1_macro")


def _to_dense(x: Any) -> Any:
    return x.toarray() if hasattr(x, "toarray") else x


def make_baseline(name: str, kind: str, seed: int) -> Pipeline:
    """A scikit-learn pipeline: flattened pixels (scaled) or TF-IDF features → one classic classifier."""
    if kind == "text":
        # word 1-2 grams; the dense step lets the histogram GBM take TF-IDF (small vocabularies here)
        features: list[Any] = [TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=20000)]
    else:
        features = [StandardScaler()]
    models = {
        "logistic_regression": LogisticRegression(max_iter=2000, C=1.0),
        "random_forest": RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
        "gradient_boosting": HistGradientBoostingClassifier(max_iter=100, random_state=seed),
    }
    if name not in models:
        raise ConfigError(f"unknown baseline {name!r}; choose from {list(models)}")
    if kind == "text" and name == "gradient_boosting":
        features.append(FunctionTransformer(_to_dense, accept_sparse=True))
    return make_pipeline(*features, models[name])


def run_baselines(train_x: Any, train_y: np.ndarray, test_x: Any, test_y: np.ndarray, kind: str,
                  names: Sequence[str], seed: int) -> dict[str, dict[str, float]]:
    """Fit each baseline on train, score on test: accuracy, macro F1, fit seconds."""
    results = {}
    for name in names:
        started = time.time()
        # one OpenMP/BLAS thread: on a shared or busy machine HistGradientBoosting's spinning threads
        # turn a 6 s fit into minutes; these models are small enough that one core is fastest anyway
        with threadpool_limits(limits=1):
            model = make_baseline(name, kind, seed).fit(train_x, train_y)
        pred = model.predict(test_x)
        results[name] = {"accuracy": float(accuracy_score(test_y, pred)),
                         "f1_macro": float(f1_score(test_y, pred, average="macro", zero_division=0)),
                         "fit_seconds": round(time.time() - started, 3)}
    return results


def compare(deep: dict[str, float], baselines: dict[str, dict[str, float]], metric: str) -> dict[str, Any]:
    """The best baseline by `metric` and the deep model's margin over it on every metric."""
    if metric not in METRICS:
        raise ConfigError(f"baselines.metric={metric!r}: use one of {list(METRICS)}")
    best = max(baselines, key=lambda n: baselines[n][metric])
    return {"best": best, "metric": metric,
            "margin": {m: deep[m] - baselines[best][m] for m in METRICS}}


def plot_baselines(deep: dict[str, float], baselines: dict[str, dict[str, float]], path: Path) -> Path:
    """Accuracy and macro F1 of the deep model next to each baseline."""
    names = ["deep model", *baselines]
    rows = [deep, *baselines.values()]
    fig, ax = new_figure(7, 4)
    x = np.arange(len(names))
    for offset, metric in ((-0.2, "accuracy"), (0.2, "f1_macro")):
        ax.bar(x + offset, [r[metric] for r in rows], width=0.4, label=metric)
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("Deep model vs scikit-learn baselines (test)")
    return save_png(fig, path)
