"""evaluate.py's config: EvaluateConfig is the schema and holds the defaults (conf/evaluate.yaml only sets Hydra up).

A typo'd key or a wrong type fails before any work with core/schema.py's message (ConfigError, exit 2)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from core import schema
from core.schema import MISSING


@dataclass
class CalibrationConfig:
    enabled: bool = True
    n_bins: int = 15                 # ECE / MCE / reliability-diagram bins
    # T is fitted inside these bounds (an error-free val split has no NLL minimum)
    min_temperature: float = 0.05
    max_temperature: float = 20.0
    write_temperature: bool = True   # RUN_DIR/calibration.json: export puts its temperature into the served spec


@dataclass
class FairnessConfig:
    enabled: bool = True
    # auto (images: ink_density, text: text_length) | ink_density | text_length | column:NAME (evaluation/groups.py)
    group: str = "auto"
    # flagged when a gap (max over classes, one-vs-rest) is above these
    thresholds: dict[str, float] = field(default_factory=lambda: {
        "demographic_parity_difference": 0.2, "equalized_odds_difference": 0.3, "accuracy_difference": 0.1})
    min_group_size: int = 10         # smaller groups are flagged as too small to judge
    max_groups: int = 10             # numeric columns with more distinct values are split at the training median


@dataclass
class ExplanationsConfig:
    enabled: bool = True
    samples: int = 4                 # test samples explained (spread over the split)
    ig_steps: int = 32               # Integrated Gradients steps
    shap_samples: int = 100          # KernelShap coalitions per sample
    shap_patches_per_side: int = 4   # images: KernelShap features are a grid of patches
    top_tokens: int = 8              # text: tokens listed per sample


@dataclass
class BaselinesConfig:
    enabled: bool = True
    # None: the data's own set (images/text: logistic_regression, random_forest, gradient_boosting; tables:
    # linear, random_forest, xgboost, lightgbm)
    models: Optional[list[str]] = None
    metric: Optional[str] = None     # the best baseline and the margin are judged on it; None: accuracy (r2 regression)


@dataclass
class ConformalConfig:
    alpha: float = 0.1               # regression: intervals aim at 1 - alpha coverage
    write: bool = True               # RUN_DIR/calibration.json's "conformal": export serves the interval


@dataclass
class SuccessConfig:
    metric: str = "test/acc"         # (regression runs: test/r2 when left at test/acc) any key of report.json's metrics
    threshold: Optional[float] = None  # None: no verdict unless the run's config (its experiment) sets one
    mode: str = "max"                # max: PASS when metric >= threshold; min: PASS when <=


@dataclass
class CardConfig:
    """Free text for MODEL_CARD.md (defaults per input kind when None)."""

    intended_use: Optional[str] = None
    out_of_scope: Optional[str] = None
    limitations: list[str] = field(default_factory=list)


@dataclass
class EvaluateConfig:
    run_dir: str = MISSING           # the run directory train.py wrote
    batch_size: int = 256            # inference batch size for logits
    model_card: bool = True          # (re)write RUN_DIR/MODEL_CARD.md from the report
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    explanations: ExplanationsConfig = field(default_factory=ExplanationsConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    conformal: ConformalConfig = field(default_factory=ConformalConfig)
    success: SuccessConfig = field(default_factory=SuccessConfig)
    card: CardConfig = field(default_factory=CardConfig)


def validate(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """Checked against EvaluateConfig (unknown keys, wrong types: ConfigError, exit 2), defaults filled in."""
    return OmegaConf.create(schema.to_dict(schema.validate(EvaluateConfig, cfg)))


def load_default(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> DictConfig:
    """EvaluateConfig's defaults for a run, as train.py uses them after fit (no Hydra app of its own)."""
    return validate(OmegaConf.merge(overrides or {}, {"run_dir": str(run_dir)}))
