"""lm_llama_tiny's promise, shortened for CI: a real CPU run of the experiment (shrunk model, a slice of the
bundled corpus) beats the Kneser-Ney trigram fitted on the same training tokens, on the same test windows."""
from __future__ import annotations

import json
from pathlib import Path

from datamodules.corpora import stdlib_files
from datamodules.token_build import tokenize_corpus
from evaluation.after_training import evaluate_after_training
from trainers.compose import compose_train
from trainers.run import train

# the experiment's code path (train.py's config, fit, test, evaluate) with a model and data that fit in CI
SHRUNK = ["datamodule.seq_len=64", "datamodule.batch_size=16", "datamodule.val_fraction=0.1",
          "datamodule.test_fraction=0.1", "model.net.config.hidden_size=64", "model.net.config.intermediate_size=176",
          "model.net.config.num_hidden_layers=2", "model.net.config.num_attention_heads=4",
          "model.net.config.num_key_value_heads=2", "model.generation.max_new_tokens=4",
          "trainer.max_steps=300", "trainer.val_check_interval=100", "trainer.limit_val_batches=4",
          "trainer.max_time=null", "callbacks.progress_bar=null", "evaluate=true"]


def corpus_slice(out):
    """~300 KB of the bundled corpus (mid-sized stdlib modules), tokenized with a 512-id BPE."""
    root, files = stdlib_files()
    chosen = [p for p in files if 4_000 <= p.stat().st_size <= 20_000][:40]
    tokenize_corpus(root, out, tokenizer="train", vocab_size=512, files=chosen)
    return out


def test_lm_llama_tiny_beats_the_trigram_baseline(tmp_path):
    data = corpus_slice(tmp_path / "tokens")
    cfg = compose_train(["+experiment=lm_llama_tiny", f"datamodule.data_dir={data}", "run_id=ci", *SHRUNK],
                        tmp_path / "out")
    summary = train(cfg)
    evaluate_after_training(cfg, Path(summary["run_dir"]))
    report = json.loads((tmp_path / "out" / "lm_llama_tiny" / "ci" / "report" / "report.json").read_text())
    baseline = report["baselines"]
    model_ppl = report["language_modeling"]["test"]["perplexity"]
    assert baseline["models"]["kneser_ney_trigram"]["train_tokens"] > 50_000
    # a margin, not a coin toss: at least 5 % lower perplexity than the trigram on the same windows
    assert model_ppl < 0.95 * baseline["test_perplexity"], (model_ppl, baseline["test_perplexity"])
    assert baseline["beats_baseline"] is True
