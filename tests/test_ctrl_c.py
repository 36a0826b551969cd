"""Issue 16 point 10: Ctrl-C (SIGINT) saves like SIGTERM, prints the resume command once and exits 130."""
from __future__ import annotations

from tests.conftest import run_entry


def test_ctrl_c_saves_prints_the_resume_command_once_and_exits_130(tmp_path):
    proc = run_entry("train.py", "+experiment=digits_cnn", f"paths.output_root={tmp_path}", "run_id=ctrlc",
                     "trainer.accelerator=cpu", "callbacks.progress_bar=null", "test_after_fit=false",
                     "trainer.limit_train_batches=4", "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0",
                     "+callbacks.signal._target_=tests.slurm.signal_at_step.SignalAtStep", "+callbacks.signal.step=2",
                     "+callbacks.signal.signal_name=SIGINT", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 130, out[-3000:]
    saved = sorted((tmp_path / "digits_cnn" / "ctrlc" / "checkpoints").glob("preempted-step*.ckpt"))
    assert [p.name for p in saved] == ["preempted-step0000003.ckpt"]  # the step in flight finished first
    assert out.count("resume with: python train.py") == 1, out[-3000:]
    assert "run_id=ctrlc resume=auto" in out and "Traceback" not in out
