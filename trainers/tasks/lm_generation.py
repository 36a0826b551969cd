"""Sample text from fixed prompts during training (TensorBoard text), so a run's progress can be read."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule

from core.rundir import RunDir



@dataclass(frozen=True)
class GenerationSettings:
    """model.generation: which prompts, how often (every N validations; 0 never), how long, how greedy."""

    prompts: list[str] = field(default_factory=lambda: ["def ", "import ", "class "])
    every_n_validations: int = 1
    max_new_tokens: int = 48
    temperature: float = 0.0  # 0: greedy (the same text on every rank, so sharded forwards stay in step)
    top_k: int = 50
    seed: int = 0


def find_tokenizer(module: LightningModule) -> Any | None:
    """The run's `tokenizers.Tokenizer`: the datamodule's, else RUN/data/tokenizer/tokenizer.json, else None."""
    from tokenizers import Tokenizer

    datamodule = getattr(module.trainer, "datamodule", None)
    found = getattr(datamodule, "tokenizer", None)
    if isinstance(found, Tokenizer):
        return found
    for candidate in (found, getattr(datamodule, "tokenizer_path", None),
                      RunDir(module.trainer.default_root_dir).tokenizer_file):
        if isinstance(candidate, (str, Path)) and Path(candidate).is_file():
            return Tokenizer.from_file(str(candidate))
    return None


@torch.no_grad()
def generate_ids(net: torch.nn.Module, prompt_ids: list[int], settings: GenerationSettings, max_len: int,
                 generator: torch.Generator | None = None, device: torch.device | None = None) -> list[int]:
    """Continue one prompt by `max_new_tokens` (no KV cache: training-time previews only); returns new ids."""
    ids = torch.tensor([prompt_ids or [0]], dtype=torch.long, device=device)
    new: list[int] = []
    for _ in range(settings.max_new_tokens):
        logits = net(ids[:, -max_len:])[0, -1].float()
        if settings.temperature > 0:
            top = torch.topk(logits / settings.temperature, min(settings.top_k, logits.numel()))
            choice = torch.multinomial(top.values.softmax(-1).cpu(), 1, generator=generator).item()
            token = int(top.indices[choice])
        else:
            token = int(logits.argmax())
        new.append(token)
        ids = torch.cat([ids, torch.tensor([[token]], device=ids.device)], dim=1)
    return new


def log_generations(module: LightningModule, settings: GenerationSettings) -> list[str]:
    """Every rank runs the same forwards (sharded nets gather together); rank 0 writes the texts to TensorBoard."""
    tokenizer = find_tokenizer(module)
    if tokenizer is None:
        return []
    was_training = module.net.training
    module.net.eval()
    generator = torch.Generator().manual_seed(settings.seed)
    max_len = int(module.hparams.get("seq_len") or 1024)
    texts = []
    try:
        for prompt in settings.prompts:
            new = generate_ids(module.net, tokenizer.encode(prompt).ids, settings, max_len, generator, module.device)
            texts.append(prompt + tokenizer.decode(new, skip_special_tokens=False))
    finally:
        module.net.train(was_training)
    if module.trainer.is_global_zero:
        body = "\n\n".join(f"**{p!r}** →\n\n```\n{t}\n```" for p, t in zip(settings.prompts, texts))
        for logger in module.trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text"):  # TensorBoard's SummaryWriter
                experiment.add_text("generations", body, global_step=module.trainer.global_step)
    return texts
