"""score.py task=perplexity: each text's negative log-likelihood under a language-model export (kind "document").

A document's tokens (the handler's tokenizer) are preceded by <|endoftext|> when the model has one: in the
training stream every document follows one, and so its first token is scored too (without one, the first
token is context only). Texts longer than the context C are scored with sliding windows (`windows`): the
first window predicts the first C tokens; each next one moves `perplexity.stride` tokens on (default C/2)
and predicts only its new tokens, with the C - stride tokens before them as context, so every token is
scored exactly once and, past the first window, with at least C - stride tokens of history (stride = C:
disjoint chunks, the cheapest and the least context). Windows of a batch are left-padded into one forward
of the exported decoder (positions come from the mask, so padding does not change a window's logits).
Columns (SCORE_COLUMNS, the one place they are declared): nll (sum over the scored tokens, nats), tokens,
mean_nll = nll / tokens, perplexity = exp(mean_nll).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from runtime.preprocessing import BadInputError

SCORE_COLUMNS = (("nll", "float64"), ("tokens", "int64"), ("mean_nll", "float64"), ("perplexity", "float64"))


def score_columns(answer: dict[str, Any]) -> dict[str, Any]:
    """One document's answer → nll, tokens, mean_nll, perplexity."""
    return {name: answer[name] for name, _ in SCORE_COLUMNS}


def windows(length: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(input start, input end, first scored target) per window over a sequence of `length` ids.

    Input ids [start, end) predict the ids at start+1 .. end; targets first .. end are scored by this window.
    """
    out: list[tuple[int, int, int]] = []
    done = 0  # targets 1..done are scored
    while done < length - 1:
        end = min(done + stride if done else context, length - 1)
        out.append((max(0, end - context), end, done + 1))
        done = end
    return out


class DocumentPreparer:
    """A text → its token ids (with the <|endoftext|> prefix); missing, non-string or empty → BadInputError."""

    def __init__(self, model: Any) -> None:
        self.tokenizer = model.tokenizer
        self.prefix = [] if model.shape.eos_token_id is None else [int(model.shape.eos_token_id)]

    def __call__(self, text: Any) -> list[int]:
        if text is None:
            raise BadInputError("missing text: the row has no value in the text column", code="missing_value")
        if not isinstance(text, str):
            raise BadInputError(f"text must be a string, got {type(text).__name__}", code="wrong_type")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            raise BadInputError("text holds a lone UTF-16 surrogate: send valid Unicode text", code="bad_encoding")
        ids = self.prefix + list(self.tokenizer.encode(text).ids)
        if len(ids) < 2:
            what = "no tokens" if len(ids) == len(self.prefix) else "one token and no <|endoftext|> to precede it"
            raise BadInputError(f"text has {what}: nothing to score", code="empty_input")
        return ids


def collate_documents(items: list[list[int]]) -> dict[str, Any]:
    """A batch of token-id lists (windows are cut per document in `perplexity_answers`)."""
    return {"documents": items}


def perplexity_answers(model: Any, inputs: dict[str, Any], top_k: int = 0) -> list[dict[str, Any]]:
    """Every document's windows, `len(documents)` windows per forward → nll, tokens, mean_nll, perplexity."""
    documents = inputs["documents"]
    context = model.shape.max_seq_len
    jobs = [(n, ids, w) for n, ids in enumerate(documents) for w in windows(len(ids), context, model.stride)]
    nll = [0.0] * len(documents)
    counts = [0] * len(documents)
    group = max(1, len(documents))
    for start in range(0, len(jobs), group):
        part = jobs[start:start + group]
        for (n, _, (_, end, first)), value in zip(part, window_nll(model, part)):
            nll[n] += value
            counts[n] += end - first + 1
    return [{"nll": total, "tokens": count, "mean_nll": total / count, "perplexity": math.exp(total / count)}
            for total, count in zip(nll, counts)]


def window_nll(model: Any, part: list[tuple[int, list[int], tuple[int, int, int]]]) -> list[float]:
    """One left-padded forward over these windows → the summed NLL of each window's scored targets."""
    shape = model.shape
    width = max(end - begin for _, _, (begin, end, _) in part)
    pad = shape.eos_token_id if shape.eos_token_id is not None else 0
    ids = torch.full((len(part), width), pad, dtype=torch.long)
    mask = torch.zeros((len(part), shape.min_past + width), dtype=torch.long)  # the decoder's dummy slot first
    targets = torch.zeros((len(part), width), dtype=torch.long)
    scored = torch.zeros((len(part), width), dtype=torch.bool)
    for row, (_, doc, (begin, end, first)) in enumerate(part):
        n = end - begin
        ids[row, width - n:] = torch.tensor(doc[begin:end])
        mask[row, shape.min_past + width - n:] = 1
        targets[row, width - n:] = torch.tensor(doc[begin + 1:end + 1])
        scored[row, width - (end - first + 1):] = True  # the window's last end-first+1 predictions are new
    with torch.inference_mode():
        logits, _ = model.decoder(ids, mask, shape.empty_past(len(part), shape.min_past))
        logp = torch.log_softmax(logits.double(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        # where, not a product: a padding row attends to nothing and its logits may be NaN
        return (-torch.where(scored, logp, torch.zeros_like(logp))).sum(dim=1).tolist()


def document_warm_up(model: Any, batch_size: int) -> dict[str, Any]:
    """Real-shaped windows: one full context per document."""
    return collate_documents([[0] * (model.shape.max_seq_len + 1)] * batch_size)
