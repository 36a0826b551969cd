"""Batched text generation over a KV-cache decoder: one left-padded prefill, then one forward per decode step.

The decoder is any callable with the contract of `trainers/nets/kv_decoder.py` (KVDecoder, its TorchScript
`model.pt` or torch.export `model.pt2`):
    logits [B, T, V], present [L, 2, B, Hkv, P+T, D] = decoder(input_ids [B, T], attention_mask [B, P+T], past)
Positions come from the mask inside the decoder, so left padding is exact. Each sequence samples with its own
torch.Generator (one uniform draw per step), so a seed gives the same tokens whatever batch it lands in.
Finished sequences leave the batch (their rows are dropped from the cache). Pure torch: ships in every .mar.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

FINISH_STOP, FINISH_LENGTH, FINISH_TIME = "stop", "length", "time"
REPLACEMENT = "\ufffd"  # what a tokenizer decodes a partial UTF-8 sequence to: held back while streaming


@dataclass(frozen=True)
class DecoderShape:
    """What generation needs to know of a decoder (metadata.json "decoder" section)."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_seq_len: int
    eos_token_id: int | None = None
    dtype: str = "float32"
    # KVDecoder's rule: a torch.export program takes P >= 1, so every prefill gets one masked dummy slot
    # (mask 0, it stays in the cache); eager and TorchScript accept it as well
    min_past: int = 1

    @classmethod
    def from_metadata(cls, decoder: dict[str, Any]) -> "DecoderShape":
        """metadata.json's "decoder" dict → DecoderShape (unknown keys ignored: newer exports add some)."""
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in decoder.items() if k in keys})

    def empty_past(self, batch: int, length: int = 0) -> torch.Tensor:
        """A zero cache of `length` slots for `batch` sequences."""
        return torch.zeros(self.num_layers, 2, batch, self.num_kv_heads, length, self.head_dim,
                           dtype=getattr(torch, self.dtype))


@dataclass
class SamplingParams:
    """One request's generation settings (validated by runtime/lm_io.py before they get here)."""

    max_new_tokens: int = 64
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    seed: int | None = None
    stop: tuple[str, ...] = ()
    time_budget_s: float | None = None


@dataclass
class Generation:
    """One finished sequence."""

    tokens: list[int]
    text: str
    finish_reason: str
    prompt_tokens: int
    prompt_nll: float | None = None  # mean nats per prompt token after the first (the drift monitor's signal)

    @property
    def completion_tokens(self) -> int:
        """How many tokens were generated."""
        return len(self.tokens)


@dataclass
class _Sequence:
    index: int
    prompt_len: int
    params: SamplingParams
    generator: torch.Generator | None
    deadline: float | None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters already streamed
    unsent: list[int] = field(default_factory=list)  # tokens generated since the last streamed delta
    finish: str | None = None


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator for one sampled sequence, seeded; no seed: a fresh random one."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def sample_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token from one row of logits [V]: greedy at temperature 0, else temperature → top-k → top-p."""
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    scores = logits.float() / params.temperature
    if params.top_k and params.top_k < scores.numel():
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass ahead of each token
        sorted_probs = sorted_probs.masked_fill(before >= params.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    # inverse CDF on one uniform draw per step: the generator advances the same way in any batch
    u = torch.rand((), generator=generator) * probs.sum()
    token = int(torch.searchsorted(torch.cumsum(probs, dim=-1), u, right=True).clamp(max=probs.numel() - 1))
    while probs[token] <= 0 and token > 0:  # a draw on a zero-width edge: take the kept token below it
        token -= 1
    return token


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might still become a stop string or a complete UTF-8 character."""
    hold = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                hold = max(hold, n)
                break
    if text.endswith(REPLACEMENT):
        hold = max(hold, len(text) - len(text.rstrip(REPLACEMENT)))
    return hold


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts → left-padded ids [B, T] and mask [B, extra + T] (`extra` masked dummy cache slots first)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), extra + width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, extra + width - len(prompt):] = 1
    return ids, mask


def token_nll(logits: torch.Tensor, ids: torch.Tensor, lengths: Sequence[int]) -> list[list[float]]:
    """Per left-padded prompt: the negative log-likelihood (nats) of each of its tokens after the first, read from
    the prefill's logits [B, T, V] (position t predicts t + 1)."""
    width = ids.shape[1]
    out: list[list[float]] = []
    for row, n in enumerate(lengths):
        if n < 2:
            out.append([])
            continue
        scores = logits[row, width - n:width - 1].float()
        picked = scores.gather(1, ids[row, width - n + 1:width].unsqueeze(1)).squeeze(1)
        out.append((torch.logsumexp(scores, dim=-1) - picked).tolist())
    return out


def prompt_nll(logits: torch.Tensor, ids: torch.Tensor, lengths: Sequence[int]) -> list[float | None]:
    """Per prompt, the mean of `token_nll` (None for a one-token prompt). A prompt unlike the training text costs
    the model more nats: served prompts against the held-out split's is the LM drift signal."""
    return [sum(t) / len(t) if t else None for t in token_nll(logits, ids, lengths)]


StreamCallback = Callable[[int, str, list[int], "str | None"], None]


def generate(decoder: Callable[..., Any], prompts: Sequence[Sequence[int]], params: Sequence[SamplingParams],
             shape: DecoderShape, decode: Callable[[list[int]], str], on_delta: StreamCallback | None = None,
             on_step: Callable[[], None] | None = None, clock: Callable[[], float] = time.monotonic,
             nll_rows: Sequence[int] = ()) -> list[Generation]:
    """Generate for every prompt together; `on_delta(index, text, token_ids, finish_reason)` streams each token.

    `on_step()` runs after each decode step's deltas (the handler sends them as one frame). `nll_rows`: the
    prompts whose `prompt_nll` to compute (the sampled, logged ones: a logsumexp over T x V per prompt).
    A prompt must be non-empty and shorter than `shape.max_seq_len` (runtime/lm_io.py checks it per request).
    """
    if len(prompts) != len(params):
        raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling settings")
    if not prompts:
        return []
    now = clock()
    seqs = [_Sequence(i, len(p), s, make_generator(s.seed) if s.temperature > 0 else None,
                      None if s.time_budget_s is None else now + s.time_budget_s) for i, (p, s) in enumerate(zip(prompts, params))]
    pad_id = shape.eos_token_id if shape.eos_token_id is not None else 0
    ids, mask = _left_pad(prompts, pad_id, shape.min_past)
    past = shape.empty_past(len(prompts), shape.min_past)
    active = list(seqs)
    with torch.inference_mode():
        logits, past = decoder(ids, mask, past)
        rows = sorted(set(nll_rows))
        nlls = dict(zip(rows, prompt_nll(logits[rows], ids[rows], [len(prompts[r]) for r in rows]))) if rows else {}
        while active:
            last = logits[:, -1, :]
            keep: list[int] = []
            next_ids: list[int] = []
            greedy = last.argmax(dim=-1).tolist()  # one call for the whole batch; sampled rows draw below
            for row, seq in enumerate(active):
                token = greedy[row] if seq.generator is None else sample_token(last[row], seq.params, seq.generator)
                _advance(seq, token, shape, decode, clock, on_delta)
                if seq.finish is None:
                    keep.append(row)
                    next_ids.append(token)
            if on_step is not None:
                on_step()
            if not keep:
                break
            if len(keep) < len(active):  # finished sequences leave the batch
                index = torch.tensor(keep, dtype=torch.long)
                past, mask = past.index_select(2, index), mask.index_select(0, index)
                active = [active[r] for r in keep]
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
            logits, past = decoder(torch.tensor(next_ids, dtype=torch.long).unsqueeze(1), mask, past)
    return [Generation(s.tokens, s.text, s.finish or FINISH_LENGTH, s.prompt_len, nlls.get(s.index)) for s in seqs]


def _advance(seq: _Sequence, token: int, shape: DecoderShape, decode: Callable[[list[int]], str],
             clock: Callable[[], float], on_delta: StreamCallback | None) -> None:
    """Append one sampled token; decide whether the sequence is finished; stream what is safe to show."""
    if shape.eos_token_id is not None and token == shape.eos_token_id:
        seq.finish = FINISH_STOP
    else:
        seq.tokens.append(token)
        if seq.params.stop or on_delta is not None:  # else the text is decoded once, at the end
            seq.text = decode(seq.tokens)
        cut = min((pos for pos in (seq.text.find(s) for s in seq.params.stop if s) if pos >= 0), default=-1)
        if cut >= 0:
            seq.text, seq.finish = seq.text[:cut], FINISH_STOP
        elif len(seq.tokens) >= seq.params.max_new_tokens or seq.prompt_len + len(seq.tokens) >= shape.max_seq_len:
            seq.finish = FINISH_LENGTH
        elif seq.deadline is not None and clock() >= seq.deadline:
            seq.finish = FINISH_TIME
    if seq.finish is not None and not seq.params.stop:
        seq.text = decode(seq.tokens)
    if on_delta is None:
        return
    if token != shape.eos_token_id:
        seq.unsent.append(token)
    visible = len(seq.text) if seq.finish else len(seq.text) - _held_back(seq.text, seq.params.stop)
    if visible > seq.sent or seq.finish:
        delta, tokens = seq.text[seq.sent:visible], seq.unsent
        seq.sent, seq.unsent = max(seq.sent, visible), []
        on_delta(seq.index, delta, tokens, seq.finish)
