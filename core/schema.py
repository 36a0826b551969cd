"""The one typed config mechanism for every config without a `_target_`: a dataclass is the schema and holds the
defaults (in exactly one place); `validate(Schema, data)` checks a dict / DictConfig against it with the signature
check's error format (unknown key + "Did you mean ...?" + valid keys, wrong type with the value) and returns the
filled dataclass. `trainers.config_check` formats its `_target_` errors with the same helpers.

    @dataclass
    class MonitorConfig:
        reference: str = MISSING            # required
        split: str = "val"
        thresholds: Thresholds = field(default_factory=Thresholds)

    cfg = validate(MonitorConfig, {"reference": "runs/x", "splt": "test"}, name="monitor")
    # ConfigError: invalid config:
    #   - unknown key 'monitor.splt'. Did you mean 'split'? Valid keys: reference, split, thresholds
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from typing import Any, Iterable, Sequence, TypeVar

from core.errors import ConfigError

T = TypeVar("T")
MISSING: Any = "???"  # OmegaConf's marker for a required value; a field defaulting to it must be given
SCALARS = (int, float, bool, str)


def suggestion(key: str, valid: Iterable[str]) -> str:
    """' Did you mean 'a' or 'b'?' for a mistyped key ('' when nothing is close)."""
    close = difflib.get_close_matches(str(key), list(valid), n=3)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def unknown_key(path: str, valid: Iterable[str], owner: str | None = None) -> str:
    """The one wording of an unknown-key problem: key, owner, suggestion, valid keys."""
    valid = sorted(valid)
    key = path.rsplit(".", 1)[-1]
    where = f" for {owner}" if owner else ""
    return f"unknown key '{path}'{where}.{suggestion(key, valid)} Valid keys: {', '.join(valid)}"


def type_names(accepted: Sequence[type]) -> str:
    """'int or None' for an error message."""
    return " or ".join("None" if t is type(None) else t.__name__ for t in accepted)


def wrong_type(path: str, accepted: Sequence[type], value: Any) -> str:
    """The one wording of a wrong-type problem."""
    return f"'{path}' must be {type_names(accepted)}, got {value!r} ({type(value).__name__})"


def raise_problems(problems: list[str], error: type[ConfigError] = ConfigError) -> None:
    """Raise one ConfigError (or the caller's subclass) listing every problem (nothing when the list is empty)."""
    if problems:
        raise error("invalid config:\n  - " + "\n  - ".join(problems))


def env_default(var: str, fallback: str) -> Any:
    """A dataclass field defaulting to $var, else `fallback` (read when the config is built, not at import)."""
    return dataclasses.field(default_factory=lambda: os.environ.get(var) or fallback)


def accepted_types(annotation: Any) -> tuple[type, ...] | None:
    """Simple scalar types an annotation allows, or None when it is not a simple scalar annotation."""
    if annotation in SCALARS:
        return (annotation,)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        # a Tensor alternative (torch.optim's `lr: float | Tensor`) cannot come from YAML: judge the scalars
        parts = [p for p in typing.get_args(annotation) if getattr(p, "__name__", "") != "Tensor"]
        if parts and all(p in (*SCALARS, type(None)) for p in parts):
            return tuple(parts)
    return None


def type_ok(value: Any, accepted: tuple[type, ...]) -> bool:
    """Whether a scalar value fits (an int is a valid float; a bool is not an int)."""
    if value is None:
        return type(None) in accepted
    if isinstance(value, bool):
        return bool in accepted
    if isinstance(value, int):
        return int in accepted or float in accepted
    if isinstance(value, float):
        return float in accepted
    if isinstance(value, str):
        return str in accepted
    return True  # lists/dicts are not judged here


def _plain(data: Any) -> Any:
    """A DictConfig/ListConfig as plain containers (interpolations resolved); anything else unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf ships with Shipyard
        return data
    if isinstance(data, (DictConfig, ListConfig)):
        return OmegaConf.to_container(data, resolve=True)
    return data


def _convert(annotation: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Check one value against its annotation; nested dataclasses, lists and dicts are checked inside."""
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if value is None:
            return None
        if not isinstance(value, dict):
            problems.append(f"'{path}' must be a mapping of {', '.join(f.name for f in dataclasses.fields(annotation))}"
                            f", got {value!r}")
            return value
        return _build(annotation, value, path, problems)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and value is not None:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and accepted_types(annotation) is None:
            return _convert(inner[0], value, path, problems)
    if origin is typing.Literal:
        if value not in args:
            problems.append(f"'{path}' must be one of {', '.join(repr(a) for a in args)}, got {value!r}")
        return value
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            problems.append(f"'{path}' must be a list, got {value!r} ({type(value).__name__})")
            return value
        item = args[0] if args else Any
        return [_convert(item, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"'{path}' must be a mapping, got {value!r} ({type(value).__name__})")
            return value
        item = args[1] if len(args) == 2 else Any
        return {k: _convert(item, v, f"{path}.{k}", problems) for k, v in value.items()}
    accepted = accepted_types(annotation)
    if accepted is not None and str in accepted and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and not type_ok(value, accepted):
        return str(value)  # `version=2` on a command line parses as a number; the schema says it names something
    if accepted is not None and not type_ok(value, accepted):
        problems.append(wrong_type(path, accepted, value))
    elif accepted is not None and float in accepted and isinstance(value, int) and not isinstance(value, bool) \
            and int not in accepted:
        return float(value)
    return value


def _build(cls: type[T], data: dict[str, Any], prefix: str, problems: list[str]) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            problems.append(unknown_key(f"{prefix}.{key}" if prefix else str(key), fields))
    values: dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name in data:
            if data[name] == MISSING:
                problems.append(f"missing value for '{path}': set {path}=...")
                continue
            values[name] = _convert(hints.get(name, Any), data[name], path, problems)
        elif f.default is MISSING or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
            problems.append(f"missing value for '{path}': set {path}=...")
    if problems:
        return None  # type: ignore[return-value] - the caller raises
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if callable(check):  # cross-field rules of a schema: a list of problems, each naming its key
        problems.extend(f"{prefix}.{p}" if prefix and not p.startswith("'") else p for p in (check() or []))
    return obj


def validate(cls: type[T], data: Any = None, name: str = "", error: type[ConfigError] = ConfigError) -> T:
    """`data` (dict / DictConfig / None) checked against the dataclass `cls`; raises ConfigError (exit 2)."""
    data = _plain(data) or {}
    if not isinstance(data, dict):
        raise_problems([f"'{name or cls.__name__}' must be a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}"
                        f", got {data!r}"], error)
    data = {k: v for k, v in data.items() if k not in ("hydra", "defaults")}
    problems: list[str] = []
    obj = _build(cls, data, name, problems)
    raise_problems(problems, error)
    return obj


def from_overrides(cls: type[T], overrides: Sequence[str] = (), base: Any = None, name: str = "",
                   error: type[ConfigError] = ConfigError) -> T:
    """`key=value` command-line overrides (dotted keys, YAML values) on top of `base`, validated against `cls`.

    The defaults are the dataclass's own (the one place they live); `${oc.env:VAR,default}` works in values.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    raise_problems([f"override {o!r} is not key=value" for o in overrides if "=" not in o], error)
    try:
        merged = OmegaConf.merge(OmegaConf.create(_plain(base) or {}),
                                 OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
        merged = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as err:  # e.g. `a=1 a.b=2`, or an interpolation that cannot resolve
        raise error(f"invalid config:\n  - {str(err).splitlines()[0]} (in {list(overrides)})") from None
    return validate(cls, merged, name, error)


def to_dict(obj: Any) -> dict[str, Any]:
    """A validated schema as plain containers (for run.json / report.json)."""
    return dataclasses.asdict(obj)


def defaults(cls: type, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The dataclass's defaults as plain containers, MISSING ('???') for a required field: the node a Hydra
    entry point composes its overrides onto (so its YAML need not repeat them). `exclude`: fields that
    config groups fill (picked in the entry point's defaults list, not set by the node)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = MISSING
        out[f.name] = to_dict(value) if dataclasses.is_dataclass(value) else value
    return out
