"""The language-modeling report: test perplexity and bits per byte, the per-document loss distribution, a
Kneser-Ney trigram baseline on the same training tokens and the model's margin over it, fixed-prompt generations."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from core.figures import new_figure, save_png
from core.rundir import RunDir
from evaluation.ngram import fit_on_documents
from evaluation.predictions import load_net, load_run_config
from evaluation.report_md import fmt, table
from trainers.checkpoints import resolve_checkpoint
from trainers.tasks.lm_generation import GenerationSettings, generate_ids

Timed = Callable[..., Any]
# used when success.metric is left at the classification default: beat a unigram-ish model at least
DEFAULT_SUCCESS = ("test/perplexity", 1000.0, "min")
LOSS_FIGURE = "document_loss.png"
# MODEL_CARD.md's default wording for this task (evaluation/model_card.py; cfg.card overrides it)
CARD_USE = {
    "text": "Continues a text prompt, one token at a time, in the style of its training corpus. Prompts should be in "
            "the language and domain of that corpus; the context is cut to the sequence length the model was trained with.",
}
CARD_LIMITATIONS = [
    "Trained and evaluated on one corpus; perplexity on other text is unmeasured.",
    "Generated text can be fluent and wrong: nothing checks it for facts, safety or licensed content.",
    "Training text may be reproduced verbatim; do not train on data that must not be repeated.",
]


@dataclass
class LMData:
    """What the sections need: the run's config, net (eval, fp32), datamodule and checkpoint."""

    run_dir: Path
    cfg: DictConfig
    net: torch.nn.Module
    datamodule: Any
    checkpoint: Path
    batch_size: int
    windows: dict[str, np.ndarray] = field(default_factory=dict)  # split → per-window NLL sums [N]
    checkpoint_choice: str = ""  # how `checkpoint` was chosen (trainers.checkpoints.ResolvedCheckpoint.how)


def load(run_dir: Path, batch_size: int) -> LMData:
    """The run's net from its best checkpoint and its datamodule rebuilt with the same seed (same splits)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    datamodule = instantiate(cfg.datamodule, batch_size=min(int(batch_size), 64))
    datamodule.setup("fit")
    chosen = resolve_checkpoint(run_dir, "best")
    return LMData(run_dir, cfg, load_net(cfg, chosen.path), datamodule, chosen.path, batch_size,
                  checkpoint_choice=chosen.how)


@torch.no_grad()
def _split_scores(data: LMData, split: str, ngram: Any | None) -> dict[str, Any]:
    """Mean NLL and perplexity over the split's windows (what metrics.json reports), and the n-gram's on them."""
    loader = data.datamodule.val_dataloader() if split == "val" else data.datamodule.test_dataloader()
    nll = tokens = ngram_nll = 0.0
    for batch in loader:
        logits = data.net(batch["input_ids"]).float()
        nll += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), reduction="sum"))
        tokens += batch["labels"].numel()
        if ngram is not None:
            ngram_nll += float(ngram.window_nll(batch["input_ids"].numpy(), batch["labels"].numpy()).sum())
    out = {"loss": nll / tokens, "perplexity": math.exp(nll / tokens), "tokens": int(tokens)}
    if ngram is not None:
        out["ngram_loss"] = ngram_nll / tokens
    return out


@torch.no_grad()
def _documents(data: LMData, split: str) -> dict[str, Any]:
    """Each document scored on its own (windows of seq_len): per-document mean loss, and bits per byte."""
    seq_len = int(data.datamodule.seq_len)
    tokenizer = data.datamodule.tokenizer
    losses, total_nll, total_bytes, total_tokens = [], 0.0, 0, 0
    for doc in data.datamodule.documents(split):
        ids = torch.as_tensor(np.asarray(doc, dtype=np.int64))
        doc_nll = 0.0
        for start in range(0, len(ids) - 1, seq_len):
            chunk = ids[start:start + seq_len + 1]
            logits = data.net(chunk[:-1].unsqueeze(0)).float()[0]
            doc_nll += float(F.cross_entropy(logits, chunk[1:], reduction="sum"))
        scored = len(ids) - 1
        if scored <= 0:
            continue
        losses.append(doc_nll / scored)
        total_nll += doc_nll
        total_tokens += scored
        total_bytes += len(tokenizer.decode(doc[1:].tolist(), skip_special_tokens=True).encode("utf-8"))
    arr = np.asarray(losses)
    return {"documents": len(losses), "tokens": total_tokens, "bytes": total_bytes,
            "bits_per_byte": total_nll / math.log(2) / max(total_bytes, 1),
            "loss_mean": float(arr.mean()), "loss_p10": float(np.percentile(arr, 10)),
            "loss_median": float(np.median(arr)), "loss_p90": float(np.percentile(arr, 90)),
            "per_document_loss": [round(float(x), 5) for x in arr]}


def _plot(losses: list[float], ngram_loss: float | None, path: Path) -> None:
    fig, ax = new_figure(7, 4)
    ax.hist(losses, bins=min(30, max(5, len(losses))), color="#4477aa")
    if ngram_loss is not None:
        ax.axvline(ngram_loss, color="#cc3311", linestyle="--", label=f"trigram baseline (mean {ngram_loss:.2f})")
        ax.legend()
    ax.set_xlabel("mean next-token loss of a test document (nats)")
    ax.set_ylabel("documents")
    ax.set_title("Per-document test loss")
    save_png(fig, path)


def _generations(data: LMData) -> list[dict[str, str]]:
    settings = GenerationSettings(**OmegaConf.to_container(data.cfg.model.get("generation") or {}, resolve=True))
    tokenizer = data.datamodule.tokenizer
    out = []
    for prompt in settings.prompts:
        new = generate_ids(data.net, tokenizer.encode(prompt).ids, settings, int(data.datamodule.seq_len))
        out.append({"prompt": prompt, "text": prompt + tokenizer.decode(new, skip_special_tokens=False)})
    return out


def sections(data: LMData, cfg: DictConfig, out_dir: Path, timed: Timed) -> dict[str, Any]:
    """report.json's language_modeling, baselines and generations sections."""
    use_baseline = bool(cfg.baselines.enabled)
    ngram = timed("ngram_fit", fit_on_documents, data.datamodule.documents("train"),
                  int(data.datamodule.vocab_size)) if use_baseline else None
    splits = {"test": timed("test_scores", _split_scores, data, "test", ngram)}
    m = RunDir(data.run_dir).read_metrics()  # val as training's final validation measured it (same windows)
    if "val/loss" in m:
        splits["val"] = {"loss": m["val/loss"], "perplexity": m.get("val/perplexity", math.exp(m["val/loss"])),
                         "tokens": None}
    docs = timed("documents", _documents, data, "test")
    test = splits["test"]
    test["bits_per_byte"] = docs["bits_per_byte"]
    report: dict[str, Any] = {"language_modeling": {**splits, "test_documents": docs,
                                                    "seq_len": int(data.datamodule.seq_len),
                                                    "vocab_size": int(data.datamodule.vocab_size)}}
    if ngram is not None:
        ngram_ppl = math.exp(test["ngram_loss"])
        model = {"test_perplexity": ngram_ppl, "test_loss": test["ngram_loss"], "train_tokens": ngram.train_tokens,
                 "smoothing": "interpolated Kneser-Ney, discount 0.75", "order": 3}
        report["baselines"] = {"trained_on": "train split tokens", "evaluated_on": "the model's test windows",
                               "models": {"kneser_ney_trigram": model}, "best": "kneser_ney_trigram",
                               "test_perplexity": ngram_ppl, "model_test_perplexity": test["perplexity"],
                               # positive: the LM is better (lower perplexity / loss than the baseline)
                               "margin": {"perplexity": ngram_ppl - test["perplexity"],
                                          "loss": test["ngram_loss"] - test["loss"]},
                               "beats_baseline": test["perplexity"] < ngram_ppl}
    _plot(docs["per_document_loss"], test.get("ngram_loss"), out_dir / LOSS_FIGURE)
    report["generations"] = timed("generations", _generations, data)
    return report


def flat(report: dict[str, Any]) -> dict[str, float]:
    """The scalars success.metric may name: test/perplexity, test/loss, test/bits_per_byte, val/perplexity."""
    lm = report.get("language_modeling") or {}
    out = {f"{s}/{k}": lm[s][k] for s in ("val", "test") if s in lm for k in ("loss", "perplexity")}
    if "test" in lm:
        out["test/bits_per_byte"] = lm["test"]["bits_per_byte"]
    return out


def summary(report: dict[str, Any]) -> list[str]:
    """The summary line's parts."""
    t = report["language_modeling"]["test"]
    parts = [f"test perplexity {t['perplexity']:.2f}", f"bits/byte {t['bits_per_byte']:.3f}"]
    if report.get("baselines"):
        parts.append(f"trigram baseline {report['baselines']['test_perplexity']:.2f}")
    return parts


def markdown(r: dict[str, Any]) -> list[str]:
    """report.md's language-modeling sections."""
    lm = r["language_modeling"]
    out = ["## Language modeling", "", f"Windows of {lm['seq_len']} tokens, vocabulary {lm['vocab_size']}.", ""]
    out += table(["split", "tokens", "loss (nats)", "perplexity"],
                 [[s, lm[s]["tokens"], lm[s]["loss"], lm[s]["perplexity"]] for s in ("val", "test") if s in lm])
    d = lm["test_documents"]
    out += [f"Test documents scored one by one: {d['documents']}, **{fmt(d['bits_per_byte'])} bits per byte**; "
            f"per-document loss median {fmt(d['loss_median'])} (p10 {fmt(d['loss_p10'])}, p90 {fmt(d['loss_p90'])}).",
            "", f"![per-document loss]({LOSS_FIGURE})", ""]
    if r.get("baselines"):
        b = r["baselines"]
        out += ["## Baseline", "", f"Kneser-Ney trigram on the training tokens: test perplexity "
                f"**{fmt(b['test_perplexity'])}** vs the model's **{fmt(b['model_test_perplexity'])}** "
                f"(margin {b['margin']['perplexity']:+.2f}).", ""]
    out += ["## Generations (greedy)", ""]
    for g in r.get("generations", []):
        out += ["```", g["text"], "```", ""]
    return out
