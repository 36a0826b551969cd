"""Language models: the trigram baseline's math, AdamW groups and the step schedule, and a real tiny LM run
(tokenize → train → evaluate) whose report holds perplexity, bits per byte, the baseline and generations."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from evaluation.ngram import KneserNeyTrigram
from tests.conftest import REPO, run_entry
from trainers.nets.causal_lm import CausalLM, NetConfigError
from trainers.schedules import decay_param_groups, warmup_cosine

TINY_LLAMA = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "tie_word_embeddings": True}


def test_kneser_ney_trigram_is_a_distribution_and_learns_the_stream():
    rng = np.random.default_rng(0)
    stream = np.tile(rng.integers(0, 40, 50), 40)  # a repeated sequence: trigrams predict it almost surely
    model = KneserNeyTrigram(40).fit(stream)
    w = np.arange(40)
    for u in (3, -1):
        assert model.prob(np.full(40, u), np.full(40, 7), w).sum() == pytest.approx(1.0)
    windows = stream[:201].reshape(1, -1)
    nll = model.window_nll(windows[:, :-1], windows[:, 1:])
    assert nll[:, 1:].mean() < 0.5 < np.log(40)


def test_net_ties_embeddings_uses_gqa_and_refuses_typos():
    net = CausalLM("llama", TINY_LLAMA, vocab_size=100, max_seq_len=16, seed=0)
    assert net.hf.lm_head.weight is net.hf.model.embed_tokens.weight
    assert net.hf.model.layers[0].self_attn.k_proj.out_features == 2 * 8  # 2 key/value heads of 8 dims
    assert net(torch.randint(0, 100, (2, 5))).shape == (2, 5, 100)
    assert net.flops_per_token(16) > 6 * net.matmul_params()
    with pytest.raises(NetConfigError, match="did you mean 'hidden_size'"):
        CausalLM("llama", {"hidden_sise": 8}, vocab_size=100)


def test_no_weight_decay_on_norms_and_biases_and_warmup_cosine():
    net = CausalLM("gpt2", {"n_embd": 16, "n_layer": 1, "n_head": 2}, vocab_size=50, max_seq_len=8, seed=0)
    decay, no_decay = decay_param_groups(net.named_parameters(), 0.1)
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) > 0
    optimizer = torch.optim.AdamW([decay, no_decay], lr=1.0)
    schedule = warmup_cosine(optimizer, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0]) and lrs[4] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 9 / 10)))


@pytest.mark.slow
def test_tiny_lm_trains_and_evaluates_with_the_trigram_baseline(tmp_path):
    text = tmp_path / "code.jsonl"
    text.write_text("".join(json.dumps({"text": f"def f{i}(x):\n    return x + {i % 7}\n" * 6}) + "\n" for i in range(80)))
    subprocess.run([sys.executable, "-m", "datamodules.tokenize", f"input={text}", f"output={tmp_path / 'tokens'}",
                    "vocab_size=300"], cwd=REPO, check=True, capture_output=True)
    run_entry("train.py", "+experiment=lm_llama_tiny", f"datamodule.data_dir={tmp_path / 'tokens'}",
              "datamodule.seq_len=32", "datamodule.batch_size=8", "trainer.max_steps=40", "trainer.val_check_interval=20",
              "trainer.limit_val_batches=2", "callbacks.progress_bar=null", "model.generation.max_new_tokens=8",
              *[f"model.net.config.{k}={v}" for k, v in TINY_LLAMA.items()], "evaluate=true",
              f"paths.output_root={tmp_path / 'out'}", "run_id=tiny")
    run_dir = tmp_path / "out" / "lm_llama_tiny" / "tiny"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"val/loss", "val/perplexity", "test/loss", "test/perplexity"} <= metrics.keys()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["task"] == "language_modeling" and info["vocab_size"] == 300 and info["seq_len"] == 32
    report = json.loads((run_dir / "report" / "report.json").read_text())
    test = report["language_modeling"]["test"]
    assert test["perplexity"] == pytest.approx(metrics["test/perplexity"], rel=1e-3)
    assert 0 < test["bits_per_byte"] < 8
    baseline = report["baselines"]
    assert baseline["test_perplexity"] > 1 and baseline["models"]["kneser_ney_trigram"]["order"] == 3
    assert baseline["margin"]["perplexity"] == pytest.approx(baseline["test_perplexity"] - test["perplexity"])
    assert report["success"]["metric"] == "test/perplexity" and report["success"]["mode"] == "min"
    assert (run_dir / "report" / "document_loss.png").is_file() and (run_dir / "MODEL_CARD.md").is_file()
    assert [g["prompt"] for g in report["generations"]] == ["def ", "import os\n", "class "]
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
