"""Hydra's command-line errors as Shipyard config errors: "Did you mean ...", exit 2, no traceback."""
from __future__ import annotations

import difflib
import os
import re
import sys
from typing import Callable

from trainers.resolvers import REPO_ROOT

_COULD_NOT_OVERRIDE = re.compile(r"Could not override '([^']+)'")


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


def run_with_config_errors(main: Callable[[], object], script: str, config_name: str,
                           config_dir: str = "conf") -> None:
    """Run a @hydra.main entry point; a composition error (unknown key, missing group) exits 2 with one line."""
    from hydra.errors import ConfigCompositionException

    full_error = os.environ.get("HYDRA_FULL_ERROR")
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
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
