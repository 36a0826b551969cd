"""A Hugging Face encoder (pretrained from a local folder, or random from a config) + a linear head."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from datamodules.hf_assets import resolve_model_dir


class HFSequenceClassifier(nn.Module):
    """Encoder → masked mean pooling → dropout → linear; forward(input_ids, attention_mask) → logits."""

    def __init__(
        self,
        num_classes: int,
        pretrained: str | None = None,
        config: dict[str, Any] | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if (pretrained is None) == (config is None):
            raise ValueError("give exactly one of `pretrained` (a folder or 'minilm') or `config` (a dict)")
        if pretrained is not None:
            self.encoder = AutoModel.from_pretrained(resolve_model_dir(pretrained), local_files_only=True)
        else:
            cfg = dict(config)
            model_type = cfg.pop("model_type", "bert")
            self.encoder = AutoModel.from_config(AutoConfig.for_model(model_type, **cfg))
        if getattr(self.encoder, "pooler", None) is not None:
            # the [CLS] pooler is unused (masked mean pooling below): unused parameters break DDP and waste memory
            self.encoder.pooler = None
        hidden = self.encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)
        # from_pretrained returns the encoder in eval mode and Lightning keeps each submodule's mode:
        # without this the fine-tuning runs with dropout off (issue 16 point 1)
        self.train()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids and mask (N, L) → logits (N, num_classes)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))
