"""core/schema.py: one typed config mechanism with the signature check's error format."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
from omegaconf import OmegaConf

from core.errors import ConfigError
from core.schema import MISSING, from_overrides, validate
from trainers.config_check import check_targets


@dataclass
class Thresholds:
    alpha: float = 0.01
    min_samples: int = 30


@dataclass
class Demo:
    reference: str = MISSING
    split: str = "val"
    mode: Literal["max", "min"] = "max"
    limit: Optional[int] = None
    names: list[str] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def check(self) -> list[str]:
        return [] if self.thresholds.min_samples > 0 else [f"'thresholds.min_samples' must be > 0"]


def test_defaults_live_in_the_dataclass_and_values_are_typed():
    cfg = validate(Demo, {"reference": "runs/x", "thresholds": {"alpha": 1}})
    assert cfg.split == "val" and cfg.thresholds.alpha == 1.0 and isinstance(cfg.thresholds.alpha, float)
    cfg = from_overrides(Demo, ["reference=r", "thresholds.min_samples=5", "names=[a,b]"])
    assert cfg.thresholds.min_samples == 5 and cfg.names == ["a", "b"]


def test_errors_use_the_signature_checks_format():
    with pytest.raises(ConfigError) as err:
        validate(Demo, OmegaConf.create({"reference": "r", "splt": "test", "thresholds": {"alpah": 0.1},
                                         "limit": "abc", "mode": "best"}), name="monitor")
    msg = str(err.value)
    assert msg.startswith("invalid config:\n  - ")
    assert "unknown key 'monitor.splt'. Did you mean 'split'? Valid keys: limit, mode, names, reference, split, " \
           "thresholds" in msg
    assert "unknown key 'monitor.thresholds.alpah'. Did you mean 'alpha'? Valid keys: alpha, min_samples" in msg
    assert "'monitor.limit' must be int or None, got 'abc' (str)" in msg
    assert "'monitor.mode' must be one of 'max', 'min', got 'best'" in msg
    with pytest.raises(ConfigError, match="missing value for 'reference'"):
        validate(Demo, {})
    with pytest.raises(ConfigError, match="min_samples' must be > 0"):
        validate(Demo, {"reference": "r", "thresholds": {"min_samples": 0}})
    # the _target_ signature check words its problems the same way
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.max_epoch' for lightning.Trainer. Did you mean "
                                          r"'max_epochs'"):
        check_targets(OmegaConf.create({"trainer": {"_target_": "lightning.Trainer", "max_epoch": 3}}))
