"""Rebuild a run's net and datamodule from its run directory and compute the net's outputs for its splits."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader

from datamodules.base import ClassificationDataModule
from core.errors import DataError, MissingPathError
from core.rundir import RunDir
from trainers.checkpoints import load_net_state_dict, resolve_checkpoint
from trainers.tasks import run_task, task_class

log = logging.getLogger(__name__)


def load_run_config(run_dir: Path) -> DictConfig:
    """The resolved config.yaml a run saved."""
    run = RunDir(run_dir)
    if not run.config_path.is_file():
        raise MissingPathError(f"{run.config_path} does not exist: run_dir must be a Shipyard run directory "
                               "(with config.yaml)")
    return run.read_config()


def best_checkpoint(run_dir: Path) -> Path:
    """run.json's best checkpoint, else the newest complete one (trainers.checkpoints: the one rule)."""
    return resolve_checkpoint(run_dir, "best").path


def load_net(cfg: DictConfig, checkpoint: Path) -> nn.Module:
    """Instantiate model.net and load the `net.` weights of a Lightning checkpoint (eval mode)."""
    net: nn.Module = instantiate(cfg.model.net)
    # a .ckpt file, or a DeepSpeed / FSDP2 checkpoint folder consolidated to fp32 (ValueError names what is wrong)
    weights = load_net_state_dict(checkpoint)
    net.load_state_dict(weights)
    return net.eval()


@dataclass
class SplitOutputs:
    """Logits, true labels and item ids of one split, in datamodule order."""

    logits: torch.Tensor
    labels: torch.Tensor
    item_ids: list[str]

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(dim=-1)

    @property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)


@dataclass
class EvaluationData:
    """Everything evaluation modules need: config, net, datamodule, and logits per split."""

    run_dir: Path
    cfg: DictConfig
    net: nn.Module
    datamodule: ClassificationDataModule
    kind: str
    labels: list[str]
    checkpoint: Path
    batch_size: int = 256
    outputs: dict[str, SplitOutputs] = field(default_factory=dict)
    target_keys: tuple[str, ...] = ("labels",)  # the task's batch keys that are not net inputs
    checkpoint_choice: str = ""  # how `checkpoint` was chosen (trainers.checkpoints.ResolvedCheckpoint.how)

    def eval_dataset(self, split: str) -> Any:
        """The split's dataset without training augmentation (same order as its logits)."""
        return self.datamodule._make_dataset(f"eval-{split}", self.datamodule.splits[split])

    def batches(self, split: str) -> DataLoader:
        """Un-shuffled, un-augmented batches of a split."""
        return DataLoader(self.eval_dataset(split), batch_size=self.batch_size, shuffle=False,
                          collate_fn=self.datamodule.collate_fn())

    def model_inputs(self, split: str, indices: list[int]) -> dict[str, torch.Tensor]:
        """The net's input tensors for some positions of a split."""
        dataset = self.eval_dataset(split)
        items = [dataset[i] for i in indices]
        return {k: torch.stack([it[k] for it in items]) for k in items[0] if k not in self.target_keys}

    def features(self, split: str) -> np.ndarray | list[str]:
        """Inputs for classic baselines: flattened preprocessed pixels, or the cleaned texts."""
        if self.kind == "text":
            return [self.datamodule.texts[i] for i in self.datamodule.splits[split]]
        if self.kind == "tabular":  # the run's imputation/scaling, categories one-hot
            from evaluation.tabular import baseline_features

            return baseline_features(self, split)
        rows = [b["pixel_values"].flatten(1).numpy() for b in self.batches(split)]
        return np.concatenate(rows)

    def raw_pixels(self, split: str) -> np.ndarray:
        """Pixel values in [0, 1] (preprocessing undone), N x C x H x W, for derived attributes and overlays."""
        mean = torch.tensor(self.datamodule.preprocess_spec().mean).view(1, -1, 1, 1)
        std = torch.tensor(self.datamodule.preprocess_spec().std).view(1, -1, 1, 1)
        rows = [(b["pixel_values"] * std + mean).clamp(0, 1) for b in self.batches(split)]
        return torch.cat(rows).numpy()


@torch.no_grad()
def compute_logits(net: nn.Module, loader: DataLoader, target_keys: tuple[str, ...] = ("labels",)
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, targets) of every batch of a loader: the net sees every key but the task's target keys."""
    all_logits, all_labels = [], []
    for batch in loader:
        all_labels.append(batch[target_keys[0]])
        all_logits.append(net(**{k: v for k, v in batch.items() if k not in target_keys}).float())
    return torch.cat(all_logits), torch.cat(all_labels)


def load_evaluation_data(run_dir: str | Path, splits: tuple[str, ...] = ("val", "test"),
                         batch_size: int = 256) -> EvaluationData:
    """Rebuild the run's datamodule (same seed → same split, checked) and net; logits for `splits`."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    datamodule: ClassificationDataModule = instantiate(cfg.datamodule)
    datamodule.setup("fit")
    saved = RunDir(run_dir).read_split_ids()
    for split in splits:
        ids = [datamodule.item_ids[i] for i in datamodule.splits[split]]
        if saved is not None and saved.get(split) != ids:
            raise DataError(f"the rebuilt {split} split differs from {run_dir}/data/splits.json: the data or the "
                            "split settings changed since training; evaluate with the data the run used")
    chosen = resolve_checkpoint(run_dir, "best")
    checkpoint = chosen.path
    net = load_net(cfg, checkpoint)
    target_keys = task_class(run_task(run_dir)).target_keys
    data = EvaluationData(run_dir, cfg, net, datamodule, datamodule.preprocess_spec().kind,
                          list(datamodule.labels), checkpoint, batch_size, target_keys=target_keys,
                          checkpoint_choice=chosen.how)
    for split in splits:
        logits, labels = compute_logits(net, data.batches(split), target_keys)
        data.outputs[split] = SplitOutputs(logits, labels, [datamodule.item_ids[i] for i in datamodule.splits[split]])
    log.info("evaluating %s with %s", run_dir, checkpoint.name)
    return data
