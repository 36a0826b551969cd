"""Fail before any work on a config that cannot be right: unknown keys, wrong types, bad combinations.

Every node with a `_target_` is checked against the signature of the class or function it names,
so `trainer.max_epoch=3` fails with "did you mean max_epochs" instead of a TypeError deep inside Lightning.
"""
from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any, Iterator

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from core.errors import ConfigError  # noqa: F401 - re-exported: callers catch trainers.config_check.ConfigError
from core.schema import accepted_types as _accepted_types
from core.schema import raise_problems, type_names, unknown_key
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


def _resolved_hint(target: Any, key: str) -> Any:
    """The annotation of `key` as a type, from the __init__ (up the MRO) that declares it; None if unresolvable."""
    owners = [c.__init__ for c in inspect.getmro(target) if "__init__" in c.__dict__] if inspect.isclass(target) else [target]
    for owner in owners:
        try:
            hints = typing.get_type_hints(owner)
        except Exception:  # noqa: BLE001 - unresolvable hints are not checked
            continue
        if key in hints:
            return hints[key]
    return None


def _is_sequence(annotation: Any) -> bool:
    """Sequence[...] / list[...] / tuple[...] (optionally | None): YAML must give a list, not a scalar."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [p for p in typing.get_args(annotation) if p is not type(None)]
        return len(parts) == 1 and _is_sequence(parts[0])
    return origin in (list, tuple, collections.abc.Sequence)


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
                annotation = _resolved_hint(target, key)
            if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
                continue
            value = node[key]
            if value is not None and _is_sequence(annotation) and not isinstance(value, (ListConfig, list, tuple)):
                problems.append(f"'{path}.{key}' must be a list, got {value!r} ({type(value).__name__}): "
                                f"e.g. {path.rpartition('.')[2] or path}.{key}=[{value},{value}]")
                continue
            accepted = _accepted_types(annotation)
            if accepted is None:
                continue
            if not _type_ok(value, accepted):
                problems.append(f"'{path}.{key}' must be {type_names(accepted)}, got {value!r} ({type(value).__name__})")
    raise_problems(problems)
