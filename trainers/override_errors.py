"""Hydra's command-line errors as Shipyard config errors: "Did you mean ...", exit 2, no traceback."""
from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from typing import Any, Callable, TypeVar

from core.errors import user_error_in
from trainers.resolvers import REPO_ROOT

_COULD_NOT_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_FULL_KEY = re.compile(r"full_key: (\S+)")
TaskFunction = TypeVar("TaskFunction", bound=Callable[..., Any])
_user_full_error: str | None = None  # HYDRA_FULL_ERROR as the user set it (run_with_config_errors forces "1")


def suggest(key: str, overrides: list[str], config_name: str, config_dir: str = "conf") -> str:
    """`unknown key 'a.b'. Did you mean 'c'?` from the keys beside `key` in the config without that override."""
    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig, OmegaConf

    kept = [o for o in overrides if not re.match(rf"^~?{re.escape(key)}=", o)]
    parent_path, _, leaf = key.rpartition(".")
    with initialize_config_dir(config_dir=str(REPO_ROOT / config_dir), version_base="1.3"):
        cfg = compose(config_name, overrides=kept)
    parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
    names = [str(k) for k in parent.keys()] if isinstance(parent, DictConfig) else []
    close = difflib.get_close_matches(leaf, names, n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (f"unknown key '{key}'.{hint} Valid keys: {', '.join(sorted(names))} "
            f"(to add a new key on purpose: +{key}=...)")


def user_facing(err: BaseException) -> tuple[int, str] | None:
    """(exit code, message) for an error the user can fix; None for a bug (its traceback stays).

    A UserError anywhere in the cause chain (raised inside Hydra's instantiate or an OmegaConf resolver), or
    a constructor refusing a config value (ValueError/KeyError/TypeError, Lightning's MisconfigurationException)
    while Hydra instantiated the node that `full_key` names.
    """
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    if (user := user_error_in(err)) is not None:
        return user.exit_code, str(user)
    cause = err.__cause__
    if isinstance(err, InstantiationException) and isinstance(
            cause, (ValueError, KeyError, TypeError, MisconfigurationException)):
        found = _FULL_KEY.search(str(err))
        node = found.group(1) if found else "config"
        text = cause.args[0] if isinstance(cause, KeyError) and cause.args else str(cause)
        return 2, (f"invalid config:\n  - {node}: {text}\n"
                   f"(HYDRA_FULL_ERROR=1 shows the traceback)")
    return None


def _exit_if_user_facing(script: str, err: Exception) -> None:
    """Print `script: message` and exit with its code when the user can fix `err`; return (to re-raise) otherwise."""
    if _user_full_error == "1" or (report := user_facing(err)) is None:
        return
    print(f"{script}: {report[1]}", file=sys.stderr)
    raise SystemExit(report[0]) from None


def reports_user_errors(script: str) -> Callable[[TaskFunction], TaskFunction]:
    """Under @hydra.main: an error the user can fix (`user_facing`) exits with one line and its code inside the
    job (so Hydra adds no "Error executing job" line); anything else keeps its traceback."""
    def decorate(task: TaskFunction) -> TaskFunction:
        @functools.wraps(task)  # Hydra unwraps __wrapped__ to find the script's config_path
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return task(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - re-raised unless it is the user's to fix
                _exit_if_user_facing(script, err)
                raise
        return run  # type: ignore[return-value]
    return decorate


def run_with_config_errors(main: Callable[[], object], script: str, config_name: str,
                           config_dir: str = "conf") -> None:
    """Run a @hydra.main entry point; a composition error (unknown key, missing group) exits 2 with one line, and
    so does an error the user can fix raised before the job starts (a resolver Hydra runs on its own nodes, e.g.
    `cv.folds=1` through hydra.mode); in the job, `reports_user_errors` does it. HYDRA_FULL_ERROR=1 keeps tracebacks."""
    from hydra.errors import ConfigCompositionException

    global _user_full_error
    full_error = _user_full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing and exiting 1: we report it
    try:
        main()
    except ConfigCompositionException as err:
        if full_error == "1":
            raise
        found = _COULD_NOT_OVERRIDE.search(str(err))
        overrides = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        try:
            message = suggest(found.group(1), overrides, config_name, config_dir) if found else str(err)
        except Exception:  # noqa: BLE001 - the hint is best effort; Hydra's own message is still right
            message = str(err)
        print(f"{script}: invalid config:\n  - {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as err:  # noqa: BLE001 - re-raised unless it is the user's to fix
        _exit_if_user_facing(script, err)
        raise
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
