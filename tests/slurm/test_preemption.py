"""Preemption: a signal → checkpoint at the next step on every rank → (Slurm) requeue → resume → same weights."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

from tests.conftest import run_entry
from tests.exported_runs import tokenized_code_corpus
from tests.slurm.conftest import TINY_DDP, TINY_LM_DDP, submit_train, wait_for, wait_for_job

LM_DOCUMENTS = 160  # ~10k training tokens: an epoch is 19 steps of 2 ranks x 8 windows
LM_STEPS = 40


def _weights(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


LOCAL = ["+experiment=digits_cnn", "trainer.accelerator=cpu", "callbacks.progress_bar=null",
         "callbacks.early_stopping=null", "test_after_fit=false", "trainer.max_epochs=2",
         "trainer.limit_train_batches=6", "trainer.limit_val_batches=2"]


@pytest.mark.slow
def test_sigterm_outside_slurm_saves_mid_epoch_exits_and_resumes_bit_identical(tmp_path):
    """Harmless outside Slurm: SIGTERM at step 8 (mid epoch 1) saves, exits 143 without requeue; resume=auto
    skips exactly the batches already trained on and ends with the uninterrupted run's weights."""
    common = [*LOCAL, f"paths.output_root={tmp_path}"]
    run_entry("train.py", *common, "run_id=straight")
    killer = ["+callbacks.signal._target_=tests.slurm.signal_at_step.SignalAtStep", "+callbacks.signal.step=8"]
    first = run_entry("train.py", *common, *killer, "run_id=split", check=False)
    assert first.returncode == 128 + 15, first.stderr[-3000:]
    run_dir = tmp_path / "digits_cnn" / "split"
    saved = sorted((run_dir / "checkpoints").glob("preempted-step*.ckpt"))
    assert [p.name for p in saved] == ["preempted-step0000009.ckpt"]  # the step in flight finished first
    info = json.loads((run_dir / "run.json").read_text())
    assert info["preemptions"][0]["signal"] == "SIGTERM" and info["preemptions"][0]["requeued"] is False
    assert "end_time" not in info  # it stopped, it did not finish

    run_entry("train.py", *common, "run_id=split", "resume=auto")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["attempts"][1]["resumed_from"].endswith("preempted-step0000009.ckpt")
    assert info["global_step"] == 12
    _assert_same_weights(tmp_path / "digits_cnn" / "straight" / "checkpoints" / "last.ckpt",
                         run_dir / "checkpoints" / "last.ckpt")
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 2  # one TensorBoard run, two attempts


def _usr1_preempted_job_matches_an_uninterrupted_one(out, experiment: str, common: list[str], steps: int) -> None:
    """Submit `straight` and `preempted` (one multirun, 2 nodes each); USR1 the second once both ranks are in the
    process group; it must save on every rank, requeue itself, resume and end with the first one's weights."""
    straight_id, job_id = submit_train("-m", *common, f"paths.output_root={out}", "run_id=straight,preempted")
    run_dir = out / experiment / "preempted"
    log = run_dir / f"slurm-{job_id}.out"

    def both_ranks_started() -> bool:  # the process group is up: every rank's handler is installed
        text = log.read_text() if log.exists() else ""
        return "GLOBAL_RANK: 0, MEMBER: 1/2" in text and "GLOBAL_RANK: 1, MEMBER: 2/2" in text

    wait_for(both_ranks_started, 240, "both ranks to join the process group")
    subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True)
    assert wait_for_job(job_id, 300, log)[0] == "COMPLETED", log.read_text()[-4000:]
    assert wait_for_job(straight_id, 120, out / experiment / "straight" / f"slurm-{straight_id}.out")[0] == "COMPLETED"

    text = log.read_text()
    assert "USR1 received, forwarding to the tasks" in text
    assert f"requeued Slurm job {job_id}" in text
    info = json.loads((run_dir / "run.json").read_text())
    (event,) = info["preemptions"]
    assert event["signal"] == "SIGUSR1" and event["requeued"] is True and event["slurm_job_id"] == job_id
    first, second = info["attempts"]
    assert (first["slurm_restart_count"], second["slurm_restart_count"]) == (0, 1)
    assert first["slurm_job_id"] == second["slurm_job_id"] == job_id
    assert second["resumed_from"] == event["checkpoint"]
    assert 0 < event["global_step"] < steps and info["global_step"] == steps  # saved mid-training, finished after
    _assert_same_weights(out / experiment / "straight" / "checkpoints" / "last.ckpt",
                         run_dir / "checkpoints" / "last.ckpt")
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 2


@pytest.mark.slurm
@pytest.mark.slow
def test_usr1_checkpoints_requeues_resumes_and_matches_an_uninterrupted_job(slurm_root):
    """2 nodes x 1 task DDP: USR1 to the batch shell → both ranks save → rank 0 requeues → the job comes back
    (same id, restart 1), resumes the run and ends with the weights of an uninterrupted job."""
    common = [*TINY_DDP, "test_after_fit=false", "trainer.max_epochs=2", "trainer.limit_train_batches=8",
              "datamodule.batch_size=16"]
    _usr1_preempted_job_matches_an_uninterrupted_one(slurm_root / "preemption", "digits_cnn", common, 16)


@pytest.mark.slurm
@pytest.mark.slow
def test_lm_llama_tiny_two_node_job_survives_usr1_with_the_uninterrupted_weights(slurm_root):
    """The same for the language model: lm_llama_tiny (2 Llama layers) over 2 nodes, warmup + cosine by steps,
    40 steps across two epoch boundaries of the token windows: the requeued job resumes mid-epoch exactly."""
    corpus = tokenized_code_corpus(slurm_root / "lm_corpus", LM_DOCUMENTS)
    common = [*TINY_LM_DDP, f"datamodule.data_dir={corpus}", "test_after_fit=false", f"trainer.max_steps={LM_STEPS}"]
    _usr1_preempted_job_matches_an_uninterrupted_one(slurm_root / "lm_preemption", "lm_llama_tiny", common, LM_STEPS)
