"""Session fixtures (registered as a plugin by tests/conftest.py): one tiny trained + exported run per input kind.

    def test_something(exported_digits):          # or exported_text
        exported_digits.run_dir / exported_digits.model_pt / exported_digits.mar ...

Each is trained ONCE per pytest session, across xdist workers (tests/built_once.py; digits_cnn: 2 short epochs; text_transformer: 1 short
epoch) and exported with `python export.py` (parity on, version 1.0, `.mar` built). Treat the
folders as read-only: tests that export again (other versions, overwrite, ...) copy the run first
with `copy_run(exported.run_dir, tmp_path)`.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.built_once import built_once
from tests.conftest import run_entry

# evaluate=false: evaluation after training (report, calibration, explanations) is not what these fixtures are for
QUIET = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false", "logger=csv", "evaluate=false"]


@dataclass(frozen=True)
class ExportedRun:
    """Paths of a trained run and of what `python export.py` wrote for it."""

    run_dir: Path
    export_dir: Path        # run_dir/export: model.pt, model.pt2, preprocess.json, tokenizer/, export.json ...
    model_pt: Path          # TorchScript (what the handlers load)
    mar: Path               # export/archives/<version>/<name>.mar
    name: str               # model name inside TorchServe (= experiment name)
    version: str
    kind: str               # "image" | "text"

    @property
    def export_json(self) -> dict:
        """The export report (parity figures, files, targets)."""
        return json.loads((self.export_dir / "export.json").read_text())


def train_and_export(output_root: Path, experiment: str, train_args: list[str], run_id: str = "fixture",
                     version: str = "1.0") -> ExportedRun:
    """Train a tiny run with train.py and export it with export.py (both as real subprocesses)."""
    run_entry("train.py", f"+experiment={experiment}", f"paths.output_root={output_root}", f"run_id={run_id}",
              *QUIET, *train_args)
    run_dir = output_root / experiment / run_id
    run_entry("export.py", f"run_dir={run_dir}", f"version={version}", "parity.batches=2")
    return exported_run(run_dir)


def exported_run(run_dir: Path) -> ExportedRun:
    """The ExportedRun of a run directory that export.py has written to (read from its export.json)."""
    export_dir = run_dir / "export"
    report = json.loads((export_dir / "export.json").read_text())
    return ExportedRun(run_dir=run_dir, export_dir=export_dir, model_pt=export_dir / "model.pt",
                       mar=export_dir / report["archive"]["path"], name=report["model_name"],
                       version=report["version"], kind=report["kind"])


def copy_run(run_dir: Path, dest_root: Path) -> Path:
    """A private copy of a run directory (without its export/) for tests that export it again."""
    dest = dest_root / run_dir.name
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("export"))
    return dest


@pytest.fixture(scope="session")
def exported_digits(tmp_path_factory: pytest.TempPathFactory) -> ExportedRun:
    """digits_cnn, 2 epochs of 10 batches, exported as digits_cnn v1.0."""
    root = built_once(tmp_path_factory, "exported_digits", lambda root: train_and_export(
        root, "digits_cnn", ["trainer.max_epochs=2", "trainer.limit_train_batches=10", "trainer.limit_val_batches=2",
                             "trainer.limit_test_batches=2"]))
    return exported_run(root / "digits_cnn" / "fixture")


@pytest.fixture(scope="session")
def exported_text(tmp_path_factory: pytest.TempPathFactory) -> ExportedRun:
    """text_transformer (2-layer BERT, MiniLM tokenizer), 1 epoch of 4 batches, exported as v1.0."""
    root = built_once(tmp_path_factory, "exported_text", lambda root: train_and_export(
        root, "text_transformer", ["trainer.max_epochs=1", "trainer.limit_train_batches=4",
                                   "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]))
    return exported_run(root / "text_transformer" / "fixture")


# the tiny LM of the export/serving tests: 2 Llama layers (GQA, tied embeddings), a 300-id tokenizer, 4 steps
TINY_LM = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "tie_word_embeddings": True}


def tokenized_code_corpus(root: Path, documents: int = 80) -> Path:
    """`documents` small generated Python files tokenized (a 300-id BPE trained on them) into root/tokens."""
    import subprocess
    import sys

    from tests.conftest import REPO

    root.mkdir(parents=True, exist_ok=True)
    text = root / "code.jsonl"
    text.write_text("".join(json.dumps({"text": f"def f{i}(x):\n    return x + {i % 7}\n" * 6}) + "\n"
                            for i in range(documents)))
    subprocess.run([sys.executable, "-m", "datamodules.tokenize", f"input={text}", f"output={root / 'tokens'}",
                    "vocab_size=300"], cwd=REPO, check=True, capture_output=True)
    return root / "tokens"


def train_tiny_lm(root: Path) -> Path:
    """Tokenize a small code corpus and train lm_llama_tiny for 4 steps on it; returns the run directory."""
    tokens = tokenized_code_corpus(root)
    run_entry("train.py", "+experiment=lm_llama_tiny", f"datamodule.data_dir={tokens}", "datamodule.seq_len=32",
              "datamodule.batch_size=8", "trainer.max_steps=4", "trainer.val_check_interval=4",
              "trainer.limit_val_batches=2", "trainer.limit_test_batches=1", "model.generation.max_new_tokens=2",
              *[f"model.net.config.{k}={v}" for k, v in TINY_LM.items()], f"paths.output_root={root / 'out'}",
              "run_id=fixture", *QUIET)
    return root / "out" / "lm_llama_tiny" / "fixture"


@pytest.fixture(scope="session")
def tiny_lm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained (4 steps) tiny Llama LM run directory; read-only (copy_run it to export again)."""
    return built_once(tmp_path_factory, "tiny_lm", train_tiny_lm) / "out" / "lm_llama_tiny" / "fixture"


def export_tiny_lm(root: Path, run_dir: Path) -> None:
    """A copy of the tiny LM run exported as version 1.0 with its .mar (TorchScript only: the archive serves
    model.pt, so torch.export's extra ~10 s would buy nothing for the serving tests)."""
    run_entry("export.py", f"run_dir={copy_run(run_dir, root)}", "version=1.0", "parity.batches=1",
              "targets=[torchscript]")


@pytest.fixture(scope="session")
def exported_tiny_lm(tiny_lm_run: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportedRun:
    """The tiny LM run exported by export.py (v1.0, TorchScript, .mar built); read-only."""
    root = built_once(tmp_path_factory, "exported_tiny_lm", lambda root: export_tiny_lm(root, tiny_lm_run))
    return exported_run(root / tiny_lm_run.name)
