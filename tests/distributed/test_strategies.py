"""DDP, FSDP2 and DeepSpeed ZeRO 1/2/3/3+offload with 2 CPU processes reach the single-process result.

Each run is a real `train.py` subprocess (conftest.Runs); the comparison loads every run's consolidated final
weights into the plain net here and evaluates the same samples. Also: one run directory for all ranks, rank 0
alone writes run.json/metrics.json, evaluation after fit works from directory checkpoints, device-hours recorded.
"""
from __future__ import annotations

import json

import pytest
import torch
from torchmetrics.classification import MulticlassF1Score

from tests.conftest import run_entry
from trainers.compose import compose_train
from tests.distributed.runs import FULL_TEST, GLOBAL_BATCH, MULTINODE, NAME, ODD_TEST_ROWS, RTOL, RUNS, STEPS
from tests.distributed.reference_eval import fixed_batch, loss_and_logits, plain_net
from trainers.config_check import ConfigError
from trainers.run import check_config

DISTRIBUTED = [MULTINODE, *[name for name in RUNS if name != "single"]]


@pytest.fixture(scope="module")
def single(strategy_runs):
    """The single-process reference: its run, evaluation batch, final loss and logits."""
    run = strategy_runs.get("single")
    batch = fixed_batch(run.run_dir, GLOBAL_BATCH)
    loss, logits = loss_and_logits(plain_net(run.run_dir, run.run_dir / "checkpoints" / "last.ckpt"), batch)
    return run, batch, loss, logits


@pytest.mark.slow
def test_single_process_reference_trained(single):
    run, batch, loss, _ = single
    info = run.run_json()
    assert info["global_step"] == STEPS
    torch.manual_seed(0)
    untrained, _ = loss_and_logits(plain_net(run.run_dir), batch)
    # training moved the loss far more than the tolerance the strategies are held to
    assert abs(untrained - loss) > 20 * RTOL * loss, (untrained, loss)


@pytest.mark.slow
@pytest.mark.parametrize("name", DISTRIBUTED)
def test_strategy_matches_single_process(strategy_runs, single, name):
    _, batch, reference_loss, reference_logits = single
    run = strategy_runs.get(name)
    run_dir = run.run_dir  # asserts one directory: every rank used rank 0's run id
    info = run.run_json()
    assert len(info["attempts"]) == 1, "a rank other than 0 wrote run.json"
    assert info["global_step"] == STEPS
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"val/loss", "test/loss", "test/acc"} <= metrics.keys()  # validate + test from the best checkpoint ran
    assert info["cost"]["devices"] * info["cost"]["nodes"] == 2 and info["cost"]["device_hours"] > 0

    loss, logits = loss_and_logits(plain_net(run_dir, run_dir / "checkpoints" / "last.ckpt"), batch)
    assert loss == pytest.approx(reference_loss, rel=RTOL), f"{name}: loss {loss} vs single process {reference_loss}"
    assert torch.allclose(logits, reference_logits, atol=5e-3), (logits - reference_logits).abs().max()
    print(f"{name}: {run.seconds:.1f}s, loss {loss:.6f} vs {reference_loss:.6f}, "
          f"max |logit diff| {(logits - reference_logits).abs().max():.2e}")


@pytest.mark.slow
def test_ddp_test_metrics_count_every_sample_once(strategy_runs):
    # one process evaluating the same checkpoint on the whole test file (what evaluate.py does) is the reference
    run = strategy_runs.get(FULL_TEST)
    batch = fixed_batch(run.run_dir, 4 * ODD_TEST_ROWS)  # the whole test split in one batch
    assert len(batch["labels"]) == ODD_TEST_ROWS
    loss, logits = loss_and_logits(plain_net(run.run_dir, run.run_dir / "checkpoints" / "last.ckpt"), batch)
    correct = int((logits.argmax(-1) == batch["labels"]).sum())
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    # exact count: a padded duplicate makes it k/120 or (k+1)/120, never k/119
    assert round(metrics["test/acc"] * ODD_TEST_ROWS, 3) == correct, (metrics["test/acc"], correct, ODD_TEST_ROWS)
    f1 = MulticlassF1Score(num_classes=logits.shape[-1], average="macro")(logits, batch["labels"])
    assert metrics["test/f1_macro"] == pytest.approx(float(f1), abs=1e-6), (metrics["test/f1_macro"], float(f1))
    # the loss too: summed over every rank's rows / 119 (not the mean of the two ranks' means, 60 and 59 rows)
    assert metrics["test/loss"] == pytest.approx(loss, rel=1e-5), (metrics["test/loss"], loss)
    print(f"ddp test/acc {metrics['test/acc']:.6f} vs one process {correct}/{ODD_TEST_ROWS}, "
          f"test/loss {metrics['test/loss']:.6f} vs {loss:.6f}")


def _problems(overrides, tmp_path) -> str:
    try:
        check_config(compose_train([f"+experiment={NAME}", *overrides], tmp_path))
    except ConfigError as err:
        return str(err)
    return ""


@pytest.mark.parametrize("overrides, needle", [
    (["trainer.accelerator=cpu", "trainer.precision=16-mixed"], "trainer.precision=16-mixed needs a CUDA GPU"),
    (["trainer.accelerator=cpu", "trainer.devices=64", "strategy=ddp"], "trainer.devices=64 but this machine has"),
    (["strategy=single", "trainer.devices=2"], "strategy=single runs one process"),
    (["strategy=ddp", "trainer.num_nodes=2"], "nothing started the other nodes"),
    (["strategy=deepspeed_stage_2", "+strategy.zero_optimization.offload_param={device:cpu}"],
     "offload_param needs ZeRO stage 3"),
    (["strategy=deepspeed_stage_3", "+strategy.zero_optimization.stage3_prefetch_bucket=1"], "stage3_prefetch_bucket"),
    (["strategy=deepspeed_stage_2", "trainer.gradient_clip_val=1.0", "trainer.gradient_clip_algorithm=value"],
     "clips gradients by norm only"),
    (["strategy=fsdp", "strategy.param_dtype=bf17"], "strategy.param_dtype='bf17'"),
    (["strategy=fsdp", "trainer.precision=64-true"], "strategy=fsdp does not take trainer.precision=64-true"),
])
def test_impossible_combination_is_refused_with_the_fix(overrides, needle, tmp_path, monkeypatch):
    for key in ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    message = _problems(overrides, tmp_path)
    assert needle in message, message


def test_possible_combinations_pass(tmp_path):
    for overrides in (["strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu"],
                      ["strategy=deepspeed_stage_3_offload", "trainer.precision=bf16-mixed", "trainer.accelerator=cpu"],
                      ["strategy=fsdp", "trainer.precision=bf16-true", "trainer.accelerator=cpu", "strategy.param_dtype=bf16"]):
        assert _problems(overrides, tmp_path) == "", overrides


def test_train_py_refuses_before_any_work(tmp_path):
    proc = run_entry("train.py", f"+experiment={NAME}", "strategy=deepspeed_stage_2", "trainer.accelerator=cpu",
                     "trainer.precision=16-mixed", f"paths.output_root={tmp_path}", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "trainer.precision=16-mixed needs a CUDA GPU" in proc.stderr and "bf16-mixed" in proc.stderr
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert not {"config.yaml", "run.json"} & set(written), written  # refused before any run output
