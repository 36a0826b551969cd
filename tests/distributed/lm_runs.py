"""The language-model strategy runs: lm_llama_tiny shrunk to a 2-layer Llama on a small tokenized code corpus.

The machinery is tests/distributed/runs.py's (TrainRuns: one `train.py` subprocess per strategy, built once per
session across xdist workers). Every run trains the same seeded weights for STEPS optimizer steps over the same
global batches of seq_len-32 windows (1 process x 16, or 2 ranks x 8: the TokensDataModule's ranks take every
2nd index of one seeded permutation), constant LR, no dropout, the experiment's gradient clipping at norm 1.0 (the first step's norm is ~1.8:
every strategy's clipping acts).
The LR is high enough that training on a wrong batch (one rank's half) moves the loss by 1.8 % (9x RTOL): the loss
comparison, not only the logits, tells a wrong global batch from float reduction order.
"""
from __future__ import annotations

from pathlib import Path

from tests.distributed.runs import TrainRuns, strategy_table
from tests.exported_runs import TINY_LM, tokenized_code_corpus

EXPERIMENT = "lm_llama_tiny"
STEPS = 8
GLOBAL_BATCH = 16  # windows per optimizer step
SEQ_LEN = 32
DOCUMENTS = 160  # ~12.5k tokens: 19 global batches of training windows, 37 test windows
COMMON = [
    f"+experiment={EXPERIMENT}", "trainer.accelerator=cpu", f"trainer.max_steps={STEPS}",
    f"trainer.val_check_interval={STEPS}", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0", "trainer.enable_model_summary=false", "trainer.max_time=null",
    "callbacks.progress_bar=null", "callbacks.throughput=null", "logger=csv", "evaluate=false",
    f"datamodule.seq_len={SEQ_LEN}", "datamodule.val_fraction=0.1", "datamodule.test_fraction=0.1",
    "model.scheduler=null", "model.optimizer.lr=0.01", "model.generation.every_n_validations=0",
    # keep the newest state every validation: Lightning 2.6 refreshes last.ckpt only when a top-k save happened
    "callbacks.model_checkpoint.monitor=null",
    *[f"model.net.config.{key}={value}" for key, value in TINY_LM.items()],
]
RUNS = strategy_table(GLOBAL_BATCH)
CORPUS = "corpus"  # the built_once folder of the tokenized corpus every run reads


class LMRuns(TrainRuns):
    """The lm_llama_tiny run of each strategy in RUNS, over one tokenized corpus built once per session."""

    experiment = EXPERIMENT

    def corpus(self) -> Path:
        """The token folder (datamodule.data_dir) every run of the session trains on."""
        return self.build_once(CORPUS, lambda folder: tokenized_code_corpus(folder, DOCUMENTS)) / "tokens"

    def overrides(self, name: str, root: Path) -> list[str]:
        return [*COMMON, f"datamodule.data_dir={self.corpus()}", *RUNS[name][0]]
