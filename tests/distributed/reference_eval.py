"""Evaluate a run's checkpoint with the plain net in this process (no process group): loss on fixed samples."""
from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from core.rundir import RunDir
from trainers.checkpoints import load_net_state_dict
from trainers.resolvers import register

register()


def plain_net(run_dir: Path, checkpoint: Path | None = None) -> nn.Module:
    """The run's net rebuilt from its config.yaml, with the checkpoint's consolidated weights (strict), eval mode."""
    net = instantiate(RunDir(run_dir).read_config().model.net)
    if checkpoint is not None:
        net.load_state_dict(load_net_state_dict(checkpoint), strict=True)
    return net.eval()


def fixed_batch(run_dir: Path, size: int) -> dict[str, torch.Tensor]:
    """The first `size` test samples in the datamodule's (unshuffled) test order."""
    cfg = RunDir(run_dir).read_config()
    datamodule = instantiate(cfg.datamodule, batch_size=size)
    datamodule.setup("test")
    return next(iter(datamodule.test_dataloader()))


@torch.no_grad()
def loss_and_logits(net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor]:
    """Mean cross-entropy on the batch (what Classifier logs as test/loss) and the logits."""
    logits = net(**{k: v for k, v in batch.items() if k != "labels"})
    return float(nn.functional.cross_entropy(logits, batch["labels"])), logits


@torch.no_grad()
def lm_loss_and_logits(net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor]:
    """Token-mean next-token NLL (LanguageModeling's own reduction, what it logs as test/loss) and the logits."""
    from trainers.tasks.language_modeling import lm_loss_sums

    logits = net(batch["input_ids"])
    nll, count = lm_loss_sums(logits, batch["labels"])
    return float(nll / count), logits
