"""The drift reference of a language model: the openings of its held-out documents, scored by the served decoder.

A language model's served inputs are prompts, and what drift means for them is text the model did not learn:
it costs the model more nats per token. The handler logs each sampled prompt's mean negative log-likelihood
(`prompt_nll`, runtime/lm_generate.prompt_nll on the prefill's logits); the reference is the same statistic,
by the same function and the same exported model.pt, over MAX_PROMPTS spans (seeded) of the reference split's
documents. A token costs fewer nats the more context precedes it, so the reference keeps every span's per-token
NLL and is cut to the lengths of the window's own prompts when compared (`length_matched_nll`): a window of
short prompts is not "drift" against long reference spans.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from core.rundir import RunDir
from runtime.lm_generate import DecoderShape, token_nll

KIND = "text_generation"        # the text-generation handler's prediction-log kind
TASK = "language_modeling"      # run.json "task"
SPAN_TOKENS = 128               # reference span length (clipped to the document and the context)
MAX_PROMPTS = 400
READ_TOKENS = 1_000_000         # of the split, at most (a large corpus is sampled from its first documents)
NUMERIC = ["prompt_nll"]        # voted on; prompt and completion lengths are the clients' choice, not drift


def _documents(dm: Any, split: str, shape: DecoderShape) -> list[list[int]]:
    """The split's documents (end-of-text dropped) with 2 tokens or more, until READ_TOKENS are read."""
    docs, total = [], 0
    for doc in dm.documents(split):
        ids = [int(t) for t in doc if int(t) != shape.eos_token_id]
        if len(ids) >= 2:
            docs.append(ids)
            total += len(ids)
        if total >= READ_TOKENS:
            break
    return docs


def is_language_model(run_dir: str | Path) -> bool:
    """Whether the run trained a language model (run.json "task")."""
    return (RunDir(run_dir).read_info(default={}) or {}).get("task") == TASK


@torch.inference_mode()
def lm_reference(run_dir: str | Path, dm: Any, split: str, version: int) -> dict[str, Any]:
    """Per-token NLL and length of MAX_PROMPTS spans of `split`'s documents, through export/model.pt."""
    export = RunDir(run_dir).export
    if not export.scripted_model_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no export/model.pt: the drift reference scores prompts with the "
                                f"served decoder; run `python export.py run_dir={run_dir}` first")
    shape = DecoderShape.from_metadata(json.loads(export.metadata_path.read_text())["decoder"])
    decoder = torch.jit.load(str(export.scripted_model_path), map_location="cpu").eval()
    docs = _documents(dm, split, shape)
    rng = random.Random(0)
    columns: dict[str, list] = {"token_nll": [], "prompt_tokens": []}
    for _ in range(MAX_PROMPTS if docs else 0):
        # a span anywhere in a document chosen by its length: prompts quote code and prose from any part of a text
        ids = rng.choices(docs, weights=[len(d) for d in docs])[0]
        n = min(len(ids), SPAN_TOKENS, shape.max_seq_len - 1)
        start = rng.randint(0, len(ids) - n)
        prompt = torch.tensor([ids[start:start + n]])
        mask = torch.ones((1, shape.min_past + n), dtype=torch.long)
        mask[0, :shape.min_past] = 0  # the masked dummy slot every prefill carries (runtime/lm_generate.py)
        logits, _ = decoder(prompt, mask, shape.empty_past(1, shape.min_past))
        columns["token_nll"].append([round(v, 5) for v in token_nll(logits, prompt, [n])[0]])
        columns["prompt_tokens"].append(n)
    if not columns["token_nll"]:
        raise ValueError(f"split {split!r} of {run_dir} has no document of 2 tokens or more to describe prompts by")
    return {"vocabulary": [], "version": version, "temperature": None, "run_dir": str(run_dir), "split": split,
            "kind": KIND, "labels": [], "n": len(columns["token_nll"]), "columns": columns,
            "numeric": NUMERIC, "categorical": []}


def length_matched_nll(reference: dict[str, Any], prompt_tokens: list[int], seed: int = 0) -> list[float]:
    """The reference's prompt_nll at the window's prompt lengths: each span's mean NLL over its first n tokens, with
    n drawn from the window's prompt lengths (capped at the span's length)."""
    lengths = [int(n) for n in prompt_tokens if n is not None and int(n) >= 2]
    if not lengths:
        lengths = [len(t) + 1 for t in reference["columns"]["token_nll"]]
    rng = random.Random(seed)
    out = []
    for nll in reference["columns"]["token_nll"]:
        if nll:
            head = nll[:rng.choice(lengths) - 1]
            out.append(sum(head) / len(head))
    return out
