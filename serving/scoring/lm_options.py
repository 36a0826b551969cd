"""score.py's settings for language models: `generation.*` (a prompt table) and `perplexity.*` (a text table).

`generation.*` are the text-generation handler's own request fields (runtime/lm_io.py FIELDS): a key left at
None takes the handler's default, so a served request and a scored record with the same fields decode
alike. Two differences from serving, both for reproducible batch output: every record is sampled with a
seed of its own, derived from `generation.seed` and the record id (the same completion in any batch,
shard or rerun), and no per-request time budget applies (a "time" finish would depend on the machine).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JOB_TASKS = ("generation", "perplexity")  # score.py task=...; None: the model's own (an LM: generation)


@dataclass
class GenerationOptions:
    """A prompt table's sampling settings (None: the handler's default, runtime/lm_io.py)."""

    max_new_tokens: int | None = None  # handler default: GenerationLimits.default_max_new_tokens
    temperature: float | None = None  # 0: greedy; handler default 1.0
    top_p: float | None = None
    top_k: int | None = None  # 0: no top-k cut
    seed: int = 0  # base seed: record seed = blake2b(seed, record id), see serving/scoring/lm.py record_seed
    stop: list[str] = field(default_factory=list)

    def request_fields(self) -> dict[str, Any]:
        """The handler request's fields these settings set (None ones left to the handler's defaults)."""
        fields = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                  "top_k": self.top_k}
        out: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if self.stop:
            out["stop"] = list(self.stop)
        return out


@dataclass
class PerplexityOptions:
    """How texts longer than the model's context are scored (sliding windows, each token scored once)."""

    stride: int | None = None  # new tokens per window; None: half the context (>= context/2 tokens of history)

    def check(self) -> list[str]:
        """stride must be positive."""
        return [f"stride={self.stride}: must be >= 1"] if self.stride is not None and self.stride < 1 else []
