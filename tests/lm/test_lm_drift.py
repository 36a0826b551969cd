"""Drift monitoring for a language model: the served handler logs each prompt's mean NLL under the model, the
reference scores spans of the run's held-out split with the same function and model.pt, and
`python -m serving monitor` passes prompts like the training text and flags prose the model never saw."""
from __future__ import annotations

import codecs
import contextlib
import io
import json
import random
from pathlib import Path

import pytest

from tests.conftest import run_entry
from tests.exported_runs import QUIET, TINY_LM, ExportedRun, exported_run, tokenized_code_corpus
from tests.lifecycle.cli import serving_cli

pytestmark = pytest.mark.slow
JSON = "application/json"


@pytest.fixture(scope="module")
def trained_lm(tmp_path_factory: pytest.TempPathFactory) -> ExportedRun:
    """The tiny Llama trained long enough (150 steps) to know its code corpus, exported (TorchScript, .mar)."""
    root = tmp_path_factory.mktemp("lm_drift")
    tokens = tokenized_code_corpus(root)
    run_entry("train.py", "+experiment=lm_llama_tiny", f"datamodule.data_dir={tokens}", "datamodule.seq_len=32",
              "datamodule.batch_size=8", "trainer.max_steps=150", "trainer.val_check_interval=150",
              "trainer.limit_val_batches=2", "trainer.limit_test_batches=1", "model.scheduler.warmup_steps=10",
              "model.generation.max_new_tokens=2", *[f"model.net.config.{k}={v}" for k, v in TINY_LM.items()],
              f"paths.output_root={root / 'out'}", "run_id=drift", *QUIET)
    run_dir = root / "out" / "lm_llama_tiny" / "drift"
    run_entry("export.py", f"run_dir={run_dir}", "version=1.0", "parity.batches=1", "targets=[torchscript]")
    return exported_run(run_dir)


def serve_and_log(exported: ExportedRun, prompts: list[str], folder: Path) -> Path:
    """The archive's handler (TorchServe's worker code, in process) answers `prompts` in batches of 8, logging all."""
    from runtime.prediction_log import PredictionLogger, PredictionLogSettings
    from serving.torchserve.inprocess import InProcessWorker

    worker = InProcessWorker(exported.mar, folder / "work", batch_size=8)
    handler = worker.handler
    handler.log = PredictionLogger(PredictionLogSettings(sample_rate=1.0, folder=str(folder / "logs")),
                                   exported.name, exported.version)
    try:
        for start in range(0, len(prompts), 8):
            bodies = [(json.dumps({"prompt": p, "max_new_tokens": 1, "temperature": 0.0}).encode(), JSON)
                      for p in prompts[start:start + 8]]
            code, answers = worker.predict(bodies)
            assert all(a.status == 200 for a in answers), [a.json for a in answers if a.status != 200]
        handler.log.flush()
    finally:
        handler.log.close()
    return folder / "logs"


def held_out_spans(run_dir: Path, count: int) -> list[str]:
    """`count` prompts cut from the run's own validation documents (8-24 tokens from a random place), as text."""
    from hydra.utils import instantiate
    from tokenizers import Tokenizer

    from core.rundir import RunDir

    dm = instantiate(RunDir(run_dir).read_config().datamodule)
    dm.setup()
    tokenizer = Tokenizer.from_file(str(RunDir(run_dir).export.tokenizer_file))
    docs = [[int(t) for t in doc if int(t) != dm.eot_id] for doc in dm.documents("val")]
    rng = random.Random(1)
    spans = []
    for _ in range(count):
        ids = rng.choice(docs)
        n = rng.randint(8, 24)
        start = rng.randint(0, len(ids) - n)
        spans.append(tokenizer.decode(ids[start:start + n]))
    return spans


def test_monitor_passes_prompts_like_the_training_text_and_flags_unseen_prose(trained_lm, tmp_path):
    calm_prompts = held_out_spans(trained_lm.run_dir, 80)
    with contextlib.redirect_stdout(io.StringIO()):  # `import this` prints the Zen of Python
        import this
    zen = [line[:24] for line in codecs.decode(this.s, "rot13").splitlines() if len(line) > 20]  # English prose
    calm = serve_and_log(trained_lm, calm_prompts, tmp_path / "calm")
    shifted = serve_and_log(trained_lm, [zen[i % len(zen)] for i in range(80)], tmp_path / "shifted")
    record = json.loads(next(calm.glob("*.jsonl")).read_text().splitlines()[0])
    assert record["kind"] == "text_generation" and record["features"]["prompt_nll"] > 0

    ok = serving_cli("monitor", f"reference={trained_lm.run_dir}", f"current={calm}", f"out={tmp_path / 'calm_report'}",
                     check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = serving_cli("monitor", f"reference={trained_lm.run_dir}", f"current={shifted}",
                      f"out={tmp_path / 'shift_report'}", check=False)
    assert bad.returncode == 3, bad.stdout + bad.stderr
    report = json.loads((tmp_path / "shift_report" / "drift_report.json").read_text())
    assert report["drifted"] and report["drifted_features"] == ["prompt_nll"], report
    reference = json.loads((trained_lm.run_dir / "monitoring" / "reference_val.json").read_text())
    assert reference["kind"] == "text_generation" and reference["n"] == 400
    calm_report = json.loads((tmp_path / "calm_report" / "drift_report.json").read_text())
    print(f"\nprompt_nll (nats/token): calm {_feature(calm_report)}, shifted {_feature(report)}")


def test_an_lm_run_without_an_export_is_told_to_export_first(trained_lm, tmp_path):
    import shutil

    run_dir = tmp_path / "unexported"
    shutil.copytree(trained_lm.run_dir, run_dir, ignore=shutil.ignore_patterns("export", "monitoring"))
    (tmp_path / "logs").mkdir()
    out = serving_cli("monitor", f"reference={run_dir}", f"current={tmp_path / 'logs'}", check=False)
    assert out.returncode != 0 and "python export.py run_dir=" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def _feature(report: dict) -> dict:
    (row,) = [f for f in report["features"] if f["name"] == "prompt_nll"]
    return {k: row.get(k) for k in ("p_value", "psi", "reference_summary", "current_summary")}
