"""The evaluation config schema (conf/evaluate.yaml mirrors it): a typo in a key fails before any work."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from trainers.resolvers import REPO_ROOT

EVALUATE_YAML = REPO_ROOT / "conf" / "evaluate.yaml"


@dataclass
class CalibrationConfig:
    enabled: bool = True
    n_bins: int = 15
    min_temperature: float = 0.05
    max_temperature: float = 20.0
    write_temperature: bool = True   # RUN_DIR/calibration.json, which export applies


@dataclass
class FairnessConfig:
    enabled: bool = True
    group: str = "auto"              # auto | ink_density | text_length | column:NAME (evaluation/groups.py)
    thresholds: dict[str, float] = field(default_factory=lambda: {
        "demographic_parity_difference": 0.2, "equalized_odds_difference": 0.3, "accuracy_difference": 0.1})
    min_group_size: int = 10
    max_groups: int = 10


@dataclass
class ExplanationsConfig:
    enabled: bool = True
    samples: int = 4
    ig_steps: int = 32
    shap_samples: int = 100
    shap_patches_per_side: int = 4
    top_tokens: int = 8


@dataclass
class BaselinesConfig:
    enabled: bool = True
    models: list[str] = field(default_factory=lambda: ["logistic_regression", "random_forest", "gradient_boosting"])
    metric: str = "accuracy"


@dataclass
class ConformalConfig:
    alpha: float = 0.1               # regression: intervals aim at 1 - alpha coverage
    write: bool = True               # RUN_DIR/calibration.json's "conformal": export serves the interval


@dataclass
class SuccessConfig:
    metric: str = "test/acc"
    threshold: Optional[float] = None  # None: no verdict unless the run's config (its experiment) sets one
    mode: str = "max"


@dataclass
class CardConfig:
    intended_use: Optional[str] = None
    out_of_scope: Optional[str] = None
    limitations: list[str] = field(default_factory=list)


@dataclass
class EvaluateConfig:
    run_dir: str = MISSING
    batch_size: int = 256
    model_card: bool = True
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    explanations: ExplanationsConfig = field(default_factory=ExplanationsConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    conformal: ConformalConfig = field(default_factory=ConformalConfig)
    success: SuccessConfig = field(default_factory=SuccessConfig)
    card: CardConfig = field(default_factory=CardConfig)


def validate(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """Merge into the schema: unknown keys and wrong types raise with the key's full name."""
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    plain = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}
    return OmegaConf.merge(OmegaConf.structured(EvaluateConfig), plain)


def load_default(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> DictConfig:
    """conf/evaluate.yaml for a run, as train.py uses it after fit (no Hydra app of its own)."""
    base = OmegaConf.load(EVALUATE_YAML)
    base = OmegaConf.masked_copy(base, [k for k in base if k not in ("hydra", "defaults")])
    base.run_dir = str(run_dir)
    return validate(OmegaConf.merge(base, overrides or {}))
