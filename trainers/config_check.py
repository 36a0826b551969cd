"""Fail before any work on a config that cannot be right: unknown keys, wrong types, bad combinations.

Every node with a `_target_` is checked against the signature of the class or function it names,
so `trainer.max_epoch=3` fails with "did you mean max_epochs" instead of a TypeError deep inside Lightning.
"""
from __future__ import annotations

import inspect
import typing
from typing import Any, Iterator

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from core.errors import ConfigError  # noqa: F401 - re-exported: callers catch trainers.config_check.ConfigError
from core.schema import accepted_types as _accepted_types
from core.schema import raise_problems, suggestion, type_names, unknown_key
from core.schema import type_ok as _type_ok

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _walk(node: Any, path: str) -> Iterator[tuple[str, DictConfig]]:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node.keys():
            if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
                continue
            yield from _walk(node[key], f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            yield from _walk(item, f"{path}[{i}]")


def _known_params(target: Any) -> tuple[dict[str, inspect.Parameter], bool] | None:
    """Named parameters a target accepts (following **kwargs up a class's MRO) and whether more are open."""
    def named(sig: inspect.Signature) -> dict[str, inspect.Parameter]:
        return {k: p for k, p in sig.parameters.items()
                if k != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}

    def open_kwargs(sig: inspect.Signature) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())

    if not inspect.isclass(target):
        try:
            sig = inspect.signature(target)
        except (TypeError, ValueError):
            return None
        return named(sig), open_kwargs(sig)
    params: dict[str, inspect.Parameter] = {}
    for cls in inspect.getmro(target):
        if cls is object or "__init__" not in cls.__dict__:
            continue
        try:
            sig = inspect.signature(cls.__init__)
        except (TypeError, ValueError):
            return None
        params = {**named(sig), **params}
        if not open_kwargs(sig):
            return params, False
    return params, True


def check_targets(cfg: DictConfig) -> None:
    """Check every `_target_` node's keys (and simple scalar types) against the target's signature."""
    problems: list[str] = []
    for path, node in _walk(cfg, ""):
        target_name = node["_target_"]
        try:
            target = get_object(target_name)
        except Exception as err:  # noqa: BLE001 - any import failure is a config problem here
            problems.append(f"{path}._target_={target_name!r} cannot be imported: {err}")
            continue
        known = _known_params(target)
        if known is None:
            continue
        params, takes_kwargs = known
        named = sorted(params)
        for key in node.keys():
            if key in HYDRA_KEYS:
                continue
            if key not in params:
                if takes_kwargs:
                    continue
                problems.append(unknown_key(f"{path}.{key}", named, owner=target_name))
                continue
            annotation = params[key].annotation
            if isinstance(annotation, str):
                try:
                    owner = target.__init__ if inspect.isclass(target) else target
                    annotation = typing.get_type_hints(owner).get(key)
                except Exception:  # noqa: BLE001 - unresolvable hints are not checked
                    annotation = None
            accepted = _accepted_types(annotation)
            if accepted is None or OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
                continue
            value = node[key]
            if not _type_ok(value, accepted):
                problems.append(f"'{path}.{key}' must be {type_names(accepted)}, got {value!r} ({type(value).__name__})")
    raise_problems(problems)


def check_top_level(cfg: DictConfig, schema: dict[str, tuple[type, ...]]) -> None:
    """Top-level keys of an entry point's config: known names and simple types."""
    problems = []
    for key in cfg.keys():
        if key not in schema:
            problems.append(f"unknown top-level key '{key}'.{suggestion(str(key), schema)} "
                            f"Valid keys: {', '.join(sorted(schema))}")
        elif schema[key] and not OmegaConf.is_interpolation(cfg, key) and not _type_ok(cfg[key], schema[key]):
            problems.append(f"'{key}' must be {type_names(schema[key])}, got {cfg[key]!r}")
    raise_problems(problems)
