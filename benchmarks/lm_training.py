"""LM training: tokens/s of train.py's path (trainers.run.train) against a hand-written PyTorch loop.

Both run in this process on the same composed `lm_llama_tiny` config (datamodule=tokens on the bundled
corpus): the same CausalLM (same seed), AdamW groups (no decay on norms and biases), warmup + cosine
schedule stepped per optimizer step, gradient clipping, batch, seq_len, precision and step count, the
datamodule's own train loader (same windows, same order). Interleaved A B A B ..., medians. Steady state
only: the window opens after `warmup` optimizer steps. Validation is kept out of the run (its interval is
past the last step): the hand-written loop does not validate. Target: Shipyard >= 0.97 of the plain loop.
"""
from __future__ import annotations

import json
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import interleaved
from trainers.compose import compose_train

EXPERIMENT = "lm_llama_tiny"
# validation past the last step; the run is sized by max_steps, never by the 8-minute safeguard
COMMON = ["trainer.val_check_interval=1000000", "trainer.max_time=null", "trainer.max_epochs=100000",
          "test_after_fit=false", "evaluate=false"]


def _tokens_per_step(cfg: Any) -> int:
    return int(cfg.datamodule.batch_size) * int(cfg.datamodule.seq_len)


def shipyard_tokens_per_s(root: Path, tag: str, warmup: int, timed: int) -> tuple[float, float]:
    """(tokens/s, ms/step) of `trainers.run.train` on the experiment, callbacks and loggers as configured."""
    from trainers.run import train

    out = root / f"lm_timer_{tag}.json"
    cfg = compose_train([
        f"+experiment={EXPERIMENT}", f"run_id=bench_lm_{tag}", f"trainer.max_steps={warmup + timed}", *COMMON,
        "+callbacks.bench_timer._target_=benchmarks.training_overhead.StepTimer",
        f"+callbacks.bench_timer.warmup_steps={warmup}", f"+callbacks.bench_timer.out={out}",
    ], root)
    train(cfg)
    result = json.loads(out.read_text())
    return result["steps"] * _tokens_per_step(cfg) / result["seconds"], 1000.0 * result["seconds"] / result["steps"]


def plain_tokens_per_s(root: Path, warmup: int, timed: int) -> tuple[float, float]:
    """The same work as a hand-written loop over parts built from the same config."""
    from hydra.utils import instantiate
    from lightning.pytorch import seed_everything
    from omegaconf import open_dict

    from trainers.schedules import decay_param_groups, warmup_cosine

    total = warmup + timed
    cfg = compose_train([f"+experiment={EXPERIMENT}", "run_id=bench_lm_plain", f"trainer.max_steps={total}",
                         *COMMON], root)
    seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("fit")
    with open_dict(cfg):
        cfg.model.vocab_size, cfg.model.seq_len = int(datamodule.vocab_size), int(datamodule.seq_len)
    net = instantiate(cfg.model.net)
    groups = decay_param_groups(net.named_parameters(), float(cfg.model.weight_decay))
    optimizer = instantiate(cfg.model.optimizer)(params=groups)
    sched = cfg.model.scheduler
    scheduler = warmup_cosine(optimizer, warmup_steps=int(sched.warmup_steps), total_steps=total,
                              min_lr_ratio=float(sched.min_lr_ratio))
    clip = cfg.trainer.get("gradient_clip_val")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in str(cfg.trainer.precision) else nullcontext()
    net.train()
    step, t0 = 0, 0.0
    while step < total:
        for batch in datamodule.train_dataloader():
            with autocast:
                logits = net(batch["input_ids"])
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1),
                                   ignore_index=-100)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), float(clip))
            optimizer.step()
            scheduler.step()
            step += 1
            if step == warmup:
                t0 = time.perf_counter()
            if step == total:
                break
    seconds = time.perf_counter() - t0
    return timed * _tokens_per_step(cfg) / seconds, 1000.0 * seconds / timed


def bench(repeats: int = 3, warmup: int = 10, timed: int = 40) -> dict[str, Any]:
    """Interleaved repeats (plain, Shipyard, plain, Shipyard ...) after a warm-up run; ratio of medians."""
    step_ms: dict[str, list[float]] = {"plain": [], "shipyard": []}
    counter = iter(range(10**6))

    def plain() -> float:
        tokens, ms = plain_tokens_per_s(root, warmup, timed)
        step_ms["plain"].append(ms)
        return tokens

    def ours() -> float:
        tokens, ms = shipyard_tokens_per_s(root, f"r{next(counter)}", warmup, timed)
        step_ms["shipyard"].append(ms)
        return tokens

    with tempfile.TemporaryDirectory(prefix="bench_lm_train_") as tmp:
        root = Path(tmp)
        plain_tokens_per_s(root, 2, 2)  # warm-up: imports, tokenized corpus cache, allocator
        runs = interleaved({"plain": plain, "shipyard": ours}, repeats)
    p, s = runs["plain"]["median"], runs["shipyard"]["median"]
    return {"experiment": EXPERIMENT, "plain_tokens_per_s": p, "shipyard_tokens_per_s": s, "ratio": s / p,
            "target": 0.97, "step_ms": {k: sorted(v)[len(v) // 2] for k, v in step_ms.items()},
            "warmup_steps": warmup, "timed_steps": timed, "repeats": repeats,
            "values": {k: runs[k]["values"] for k in runs}}


if __name__ == "__main__":
    print(json.dumps(bench(), indent=1))
