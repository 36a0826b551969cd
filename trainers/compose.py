"""The config `python train.py <overrides>` would run, composed in-process (tests, benchmarks, notebooks)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, open_dict

from trainers.resolvers import REPO_ROOT, register


def compose_train(overrides: list[str], output_root: str | Path) -> DictConfig:
    """Compose conf/train.yaml with overrides (outputs under output_root); HydraConfig is set as in a run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_root={output_root}"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg
