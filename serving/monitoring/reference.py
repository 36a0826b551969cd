"""The drift reference: the run's own held-out split described by the feature code the handlers log with.

Built once per (run, split) from the run directory alone (resolved config, splits, checkpoint or
exported TorchScript) and cached in `RUN_DIR/monitoring/reference_<split>.json`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from core.rundir import RunDir
from runtime.pii import redact
from serving.export.run_loading import load_spec
from serving.monitoring.lm_reference import is_language_model, lm_reference
from runtime.preprocessing import image_to_tensor, tokenize
from runtime.prediction_features import image_features, logit_features, oov_rate, real_token_ids, text_features, words
from trainers.rundir import atomic_write_json

REFERENCE_VERSION = 2  # 2: confidences through the calibration temperature serving applies


def load_run_model(run_dir: Path) -> torch.nn.Module:
    """The exported TorchScript model when there is one, else the net rebuilt from config + best checkpoint."""
    scripted = RunDir(run_dir).scripted_model_path
    if scripted.exists():
        return torch.jit.load(str(scripted), map_location="cpu").eval()
    from hydra.utils import instantiate

    from trainers.checkpoints import CheckpointError, load_net_state_dict, resolve_checkpoint

    try:
        chosen = resolve_checkpoint(run_dir, "best")  # the same best|fallback rule as evaluate and export
    except CheckpointError:
        raise FileNotFoundError(f"{run_dir} has neither export/model.pt nor a checkpoint "
                                "(train it to completion, or run export.py run_dir=...)") from None
    net = instantiate(RunDir(run_dir).read_config().model.net)
    net.load_state_dict(load_net_state_dict(chosen.path))  # weights_only=True + allowlist; any layout
    return net.eval()


def _datamodule(run_dir: Path, split: str) -> Any:
    """The run's datamodule, set up, once `split` is known to be one of its splits."""
    from hydra.utils import instantiate

    dm = instantiate(RunDir(run_dir).read_config().datamodule)
    dm.setup()
    if split not in dm.splits:
        raise ValueError(f"reference split {split!r} unknown; the run has {sorted(dm.splits)}")
    return dm


@torch.no_grad()
def build_reference(run_dir: str | Path, split: str = "val", batch_size: int = 128) -> dict[str, Any]:
    """Feature columns (name → values) of every item of `split`, with the model's predictions."""
    run_dir = Path(run_dir)
    if is_language_model(run_dir):
        return lm_reference(run_dir, _datamodule(run_dir, split), split, REFERENCE_VERSION)
    # the spec serving uses: preprocess.json + calibration.json's temperature (else every calibrated model
    # looks drifted: served confidences are sharpened by T, raw reference ones are not)
    spec, _ = load_spec(run_dir)
    dm = _datamodule(run_dir, split)
    if spec.kind == "tabular":
        return tabular_reference(run_dir, spec, dm, split)
    model = load_run_model(run_dir)
    indices = dm.splits[split]
    columns: dict[str, list] = {}
    texts: list[str] = []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        if spec.kind == "image":
            images = [dm.datasets[split].load(i) for i in chunk]
            rows = [image_features(img) for img in images]
            logits = model(torch.stack([image_to_tensor(img, spec) for img in images]))
        else:
            raw = [dm.texts[i] for i in chunk]
            enc = tokenize(raw, dm.tokenizer, spec)
            unk = getattr(dm.tokenizer, "unk_token_id", None)
            rows = [text_features(t, real_token_ids(ids, m), unk)
                    for t, ids, m in zip(raw, enc["input_ids"], enc["attention_mask"])]
            texts += [redact(t) for t in raw]  # the logs hold redacted text: describe the reference the same way
            logits = model(enc["input_ids"], enc["attention_mask"])
        logits = logits[0] if isinstance(logits, (tuple, list)) else logits
        for row, lf, pred in zip(rows, logit_features(logits, spec.temperature), logits.argmax(-1).tolist()):
            for key, value in {**row, **lf, "prediction": spec.labels[pred]}.items():
                columns.setdefault(key, []).append(value)
        columns.setdefault("label", []).extend(spec.labels[dm.item_labels[i]] for i in chunk)
    vocabulary: list[str] = []
    if texts:
        # OOV is measured against the words the model trained on (not the reference split's own words)
        train_words = {w for i in dm.splits["train"] for w in words(redact(dm.texts[i]))}
        vocabulary = sorted(train_words)
        columns["oov_rate"] = [oov_rate(t, train_words) for t in texts]
        columns["text"] = texts
    return {"vocabulary": vocabulary, "version": REFERENCE_VERSION, "temperature": spec.temperature, "run_dir": str(run_dir), "split": split, "kind": spec.kind,
            "labels": spec.labels, "n": len(indices), "columns": columns}


def tabular_reference(run_dir: Path, spec: PreprocessSpec, dm: Any, split: str) -> dict[str, Any]:
    """Per feature column, the split's values as the tabular handler logs them (runtime/tabular_log.py)."""
    from runtime.tabular import TabularSpec
    from runtime.tabular_log import row_features

    table = TabularSpec.from_dict(spec.tabular)
    columns: dict[str, list] = {name: [] for name in table.feature_names}
    for row in dm.split_rows(split):
        for name, value in row_features(row, table).items():
            columns[name].append(value)
    return {"vocabulary": [], "version": REFERENCE_VERSION, "run_dir": str(run_dir), "split": split, "kind": "tabular",
            "labels": spec.labels, "n": len(dm.splits[split]), "columns": columns,
            "numeric": [c.name for c in table.numeric], "categorical": [c.name for c in table.categorical]}


def load_reference(run_dir: str | Path, split: str = "val", rebuild: bool = False) -> dict[str, Any]:
    """The cached reference of a run (built on first use)."""
    run_dir = Path(run_dir)
    if not RunDir(run_dir).is_run():
        raise FileNotFoundError(f"reference={run_dir} is not a run directory (no config.yaml)")
    cache = RunDir(run_dir).reference_path(split)
    if cache.exists() and not rebuild:
        data = json.loads(cache.read_text())
        temperature = None if is_language_model(run_dir) else load_spec(run_dir)[0].temperature
        if data.get("version") == REFERENCE_VERSION and data.get("temperature") == temperature:
            return data  # a calibration written after the cache was built invalidates it
    data = build_reference(run_dir, split)
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache, data)
    return data
