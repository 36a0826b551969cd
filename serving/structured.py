"""Compose `conf/<name>.yaml` + `key=value` overrides into a dataclass (a typo or wrong type fails loudly)."""
from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
T = TypeVar("T")


def compose_structured(name: str, cls: type[T], overrides: Sequence[str] = ()) -> T:
    """Hydra's compose API over conf/<name>.yaml, validated against `cls` (nested dataclasses allowed)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(name, overrides=list(overrides))
    except HydraException as err:
        raise ValueError(f"bad override in {list(overrides)} for conf/{name}.yaml: {err}") from err
    finally:
        GlobalHydra.instance().clear()
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.to_container(cfg, resolve=True))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ValueError(f"conf/{name}.yaml: {getattr(err, 'msg', err)}. Valid keys: {_keys(cls)}") from err


def _keys(cls: type) -> dict:
    return {f.name: (_keys(f.type) if is_dataclass(f.type) else f.type if isinstance(f.type, str) else f.type.__name__)
            for f in fields(cls)}
