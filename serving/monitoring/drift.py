"""Drift statistics between a reference sample and a current window (scipy.stats does the tests).

A feature drifts when its test rejects at `alpha` after a Bonferroni correction over all the tests of
one report (so the false-alarm rate of a whole report stays at or below `alpha`) AND its PSI reaches
`min_psi` (an effect size, so a very large window does not alarm on a shift nobody cares about).
The mean confidence dropping by more than `max_confidence_drop` (and significantly so, one-sided
Mann-Whitney U at the same corrected level) is an alarm of its own.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import stats


@dataclass
class DriftThresholds:
    """When a report says "drift" (and `python -m serving monitor` exits non-zero)."""

    alpha: float = 0.01               # false-alarm rate of one whole report (Bonferroni over its tests)
    min_psi: float = 0.1              # a feature must also move by at least this PSI to count as drift
    max_confidence_drop: float = 0.1  # reference minus current mean top-1 confidence
    psi_bins: int = 10
    min_expected: float = 5.0  # chi-squared: categories expected less often are pooled into "__other__"
    min_samples: int = 20             # fewer current records is an error, not a verdict

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins must be >= 2, got {self.psi_bins}")


@dataclass
class FeatureDrift:
    """One feature's comparison."""

    name: str
    kind: str  # numeric | categorical
    test: str
    statistic: float
    p_value: float
    psi: float
    n_reference: int
    n_current: int
    reference_summary: dict[str, Any] = field(default_factory=dict)
    current_summary: dict[str, Any] = field(default_factory=dict)
    drifted: bool = False


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index over the reference's quantile bins (ties collapse bins)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant reference: one bin for "equal", one for "different"
        ref_p = np.array([1.0, 0.0])
        cur_p = np.array([np.mean(current == edges[0]), np.mean(current != edges[0])])
    else:
        edges[0], edges[-1] = -np.inf, np.inf
        ref_p = np.histogram(reference, edges)[0] / len(reference)
        cur_p = np.histogram(current, edges)[0] / len(current)
    return _psi(ref_p, cur_p, eps)


def _psi(ref_p: np.ndarray, cur_p: np.ndarray, eps: float) -> float:
    ref_p = np.clip(ref_p, eps, None)
    cur_p = np.clip(cur_p, eps, None)
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


def compare_numeric(name: str, reference: Sequence[float], current: Sequence[float],
                    th: DriftThresholds) -> FeatureDrift:
    """Two-sample Kolmogorov-Smirnov test + PSI for one numeric feature."""
    ref = np.asarray([v for v in reference if v is not None], dtype=float)
    cur = np.asarray([v for v in current if v is not None], dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError(f"feature {name!r} has no finite values in the {'reference' if len(ref) == 0 else 'current'} sample")
    result = stats.ks_2samp(ref, cur)
    return FeatureDrift(
        name, "numeric", "ks_2samp", float(result.statistic), float(result.pvalue),
        psi_numeric(ref, cur, th.psi_bins), len(ref), len(cur),
        _numeric_summary(ref), _numeric_summary(cur),
    )


def _numeric_summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std()),
            "p05": float(np.quantile(values, 0.05)), "p95": float(np.quantile(values, 0.95))}


def compare_categorical(name: str, reference: Sequence[str], current: Sequence[str],
                        th: DriftThresholds) -> FeatureDrift:
    """Chi-squared test of homogeneity (reference vs current counts) + PSI for one categorical feature."""
    ref_counts, cur_counts = Counter(reference), Counter(current)
    n_ref, n_cur = sum(ref_counts.values()), sum(cur_counts.values())
    if n_ref == 0 or n_cur == 0:
        raise ValueError(f"feature {name!r} has no values in the {'reference' if n_ref == 0 else 'current'} sample")
    categories = sorted(set(ref_counts) | set(cur_counts))
    # pool rare categories: the chi-squared approximation needs expected counts of about 5 or more
    expected_min = {c: (ref_counts[c] + cur_counts[c]) * min(n_ref, n_cur) / (n_ref + n_cur) for c in categories}
    kept = [c for c in categories if expected_min[c] >= th.min_expected]
    pooled = [c for c in categories if c not in kept]
    table_ref = [ref_counts[c] for c in kept] + ([sum(ref_counts[c] for c in pooled)] if pooled else [])
    table_cur = [cur_counts[c] for c in kept] + ([sum(cur_counts[c] for c in pooled)] if pooled else [])
    if len(table_ref) < 2:
        statistic, p_value = 0.0, 1.0  # one category only: nothing can differ
    else:
        res = stats.chi2_contingency(np.array([table_ref, table_cur]), correction=False)
        statistic, p_value = float(res.statistic), float(res.pvalue)
    ref_p = np.array([ref_counts[c] / n_ref for c in categories])
    cur_p = np.array([cur_counts[c] / n_cur for c in categories])
    return FeatureDrift(
        name, "categorical", "chi2_contingency", statistic, p_value, _psi(ref_p, cur_p, 1e-4), n_ref, n_cur,
        {c: round(float(p), 4) for c, p in zip(categories, ref_p)},
        {c: round(float(p), 4) for c, p in zip(categories, cur_p)},
    )


@dataclass
class DriftResult:
    """A whole comparison: per-feature results, the confidence check, and the verdict."""

    features: list[FeatureDrift]
    thresholds: DriftThresholds
    mean_confidence_reference: float | None
    mean_confidence_current: float | None
    confidence_drop: float | None
    confidence_alarm: bool
    drift_score: float  # max PSI over features: the number Prometheus alerts on
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the JSON report)."""
        return {
            "drifted": self.drifted,
            "drift_score": self.drift_score,
            "thresholds": asdict(self.thresholds),
            "corrected_alpha": self.thresholds.alpha / (len(self.features) + (self.confidence_drop is not None)),
            "confidence": {"reference_mean": self.mean_confidence_reference,
                           "current_mean": self.mean_confidence_current,
                           "drop": self.confidence_drop, "alarm": self.confidence_alarm},
            "features": [asdict(f) for f in self.features],
            "drifted_features": [f.name for f in self.features if f.drifted],
        }


def compare(reference: dict[str, list], current: dict[str, list], numeric: Sequence[str],
            categorical: Sequence[str], th: DriftThresholds) -> DriftResult:
    """Compare every listed feature (columns: name → values) and decide."""
    n_cur = max((len(current.get(n, [])) for n in [*numeric, *categorical]), default=0)
    if n_cur < th.min_samples:
        raise ValueError(f"only {n_cur} current records; drift needs at least min_samples={th.min_samples} "
                         "(log more requests or widen the window)")
    results = [compare_numeric(n, reference[n], current[n], th) for n in numeric]
    results += [compare_categorical(n, reference[n], current[n], th) for n in categorical]
    ref_conf = _mean(reference.get("confidence"))
    cur_conf = _mean(current.get("confidence"))
    drop = (ref_conf - cur_conf) if ref_conf is not None and cur_conf is not None else None
    corrected = th.alpha / (len(results) + (drop is not None))  # the confidence test counts as one more test
    for r in results:
        r.drifted = r.p_value < corrected and r.psi >= th.min_psi
    conf_alarm = False
    if drop is not None and drop > th.max_confidence_drop:
        # a drop that large must also be significant (one-sided Mann-Whitney U): small windows are noisy
        ref_c = [v for v in reference["confidence"] if v is not None]
        cur_c = [v for v in current["confidence"] if v is not None]
        conf_alarm = bool(stats.mannwhitneyu(ref_c, cur_c, alternative="greater").pvalue < corrected)
    score = max((r.psi for r in results), default=0.0)
    return DriftResult(results, th, ref_conf, cur_conf, drop, conf_alarm, score,
                       any(r.drifted for r in results) or conf_alarm)


def _mean(values: Sequence[float] | None) -> float | None:
    vals = [v for v in (values or []) if v is not None]
    return float(np.mean(vals)) if vals else None
