"""launcher=slurm: our sbatch template, a real 2-node DDP job, the in-job checks, dry runs."""
from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from trainers.compose import compose_train
from tests.slurm.conftest import TINY_DDP, submit_train, wait_for_job
from trainers.config_check import ConfigError
from trainers.slurm import SlurmResources, parse_time
from trainers.slurm_launch import submit_training

@pytest.fixture(scope="module")
def ddp_job(slurm_root):
    """One 2 nodes x 1 task DDP job of digits_cnn run to completion through slurm/train.sbatch."""
    out = slurm_root / "sbatch"
    (job_id,) = submit_train(*TINY_DDP, f"paths.output_root={out}", "run_id=ddp", "trainer.max_epochs=1",
                             "trainer.limit_train_batches=4")
    run_dir = out / "digits_cnn" / "ddp"
    state = wait_for_job(job_id, 240, run_dir / f"slurm-{job_id}.out")
    return job_id, run_dir, state


@pytest.mark.slurm
@pytest.mark.slow
def test_two_node_ddp_job_trains_to_completion(ddp_job):
    job_id, run_dir, (state, exit_code) = ddp_job
    log = (run_dir / f"slurm-{job_id}.out").read_text()
    assert (state, exit_code) == ("COMPLETED", "0:0"), log[-4000:]
    # both ranks took part, each srun's own task (the line label is srun's task id: Lightning re-executing
    # the command would show rank 1 under task 0's label)
    lines = log.splitlines()
    assert any(line.startswith("0: ") and "GLOBAL_RANK: 0, MEMBER: 1/2" in line for line in lines)
    assert any(line.startswith("1: ") and "GLOBAL_RANK: 1, MEMBER: 2/2" in line for line in lines)
    assert "master n1:" in log
    # one run directory with one config; rank 0 alone writes the logs
    assert [p.name for p in run_dir.parent.iterdir() if p.is_dir() and p.name != "multirun"] == ["ddp"]
    assert len(list(run_dir.rglob("config.yaml"))) == 1
    train_log = (run_dir / "train.log").read_text()
    assert "[rank: 0]" in train_log and "[rank: 1]" not in train_log and "1: [" in log
    info = json.loads((run_dir / "run.json").read_text())
    assert len(info["attempts"]) == 1 and info["attempts"][0]["slurm_job_id"] == job_id
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] > 0.3
    submission = json.loads((run_dir / "submission.json").read_text())
    assert submission["job_id"] == job_id and submission["resources"]["nodes"] == 2
    # checkpoints load into the plain net
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert (cfg.trainer.num_nodes, cfg.trainer.devices, cfg.run_id) == (2, 1, "ddp")
    net = instantiate(cfg.model.net)
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
        state_dict = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        net.load_state_dict({k.removeprefix("net."): v for k, v in state_dict.items() if k.startswith("net.")})


@pytest.mark.slurm
@pytest.mark.slow
def test_misconfigured_job_fails_fast_with_the_message(ddp_job, slurm_root):
    """The same script with --ntasks-per-node=2 (2 tasks per node, trainer.devices=1): refused before training."""
    job_id, run_dir, _ = ddp_job
    bad_log = slurm_root / "misconfigured.out"
    proc = subprocess.run(["sbatch", "--parsable", "--ntasks-per-node=2", f"--output={bad_log}",
                           str(run_dir / "train.sbatch")], capture_output=True, text=True, check=True)
    bad_id = proc.stdout.strip()
    state, exit_code = wait_for_job(bad_id, 180, bad_log)
    text = bad_log.read_text()
    assert state == "FAILED" and "Exited with exit code 2" in text, (state, exit_code, text[-3000:])
    assert "Slurm runs 2 task(s) per node (--ntasks-per-node=2) but trainer.devices=1" in text
    assert "set trainer.devices=2" in text
    assert "Epoch 0" not in text and "Initializing distributed" not in text  # nothing started
    assert len(json.loads((run_dir / "run.json").read_text())["attempts"]) == 1


def test_dry_run_prints_the_script_and_submits_nothing(tmp_path, capsys):
    """In-process (no cluster needed): the same code path as `train.py ... launcher=slurm slurm.dry_run=true`."""
    cfg = compose_train(["+experiment=digits_cnn", "launcher=slurm", "slurm.dry_run=true", "run_id=dry",
                         "slurm.nodes=2", "slurm.gpus_per_node=4", "slurm.cpus_per_task=8", "slurm.mem=64G",
                         "slurm.time=02:00:00", "slurm.partition=gpu", "slurm.account=proj", "slurm.qos=high",
                         "slurm.signal_seconds=300", "slurm.device_kind=h100",
                         "slurm.sbatch_extra=[--exclusive]"], tmp_path)
    assert submit_training(cfg) is None
    text = capsys.readouterr().out
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64G", "#SBATCH --time=02:00:00",
                 "#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --qos=high",
                 "#SBATCH --signal=B:USR1@300", "#SBATCH --requeue", "#SBATCH --open-mode=append",
                 "#SBATCH --exclusive", f"#SBATCH --output={tmp_path.resolve()}/digits_cnn/dry/slurm-%j.out",
                 'scontrol show hostnames "$SLURM_JOB_NODELIST"'):
        assert line in text, line
    (srun,) = [line for line in text.splitlines() if line.startswith("srun ")]
    tokens = shlex.split(srun)
    assert tokens[tokens.index("train.py") + 1] == "+experiment=digits_cnn"
    assert {"run_id=dry", "resume=auto", "trainer.num_nodes=2", "trainer.devices=4"} <= set(tokens)
    assert not [t for t in tokens if t.startswith(("launcher=", "slurm.dry_run="))], tokens
    assert "16.000 device-hours of h100" in text and "40.00 USD" in text
    assert "not submitted" in text
    assert not (tmp_path / "digits_cnn" / "dry" / "train.sbatch").exists()
    assert not (tmp_path / "digits_cnn" / "dry" / "submission.json").exists()


@pytest.mark.parametrize(("settings", "message"), [
    ({"time": "00:01:00", "signal_seconds": 120}, "slurm.signal_seconds=120 must be below slurm.time=00:01:00"),
    ({"time": "one hour"}, "slurm.time='one hour' is not a Slurm time"),
    ({"gpus_per_node": 4, "ntasks_per_node": 2}, "Lightning runs one task per GPU"),
    ({"nodes": 0}, "slurm.nodes must be a positive integer"),
])
def test_bad_slurm_settings_are_clear_errors(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SlurmResources.from_config(settings, {"devices": 1, "num_nodes": 1})


def test_slurm_times_parse():
    assert [parse_time(t) for t in ("90", "10:00", "01:30:00", "2-00", "1-02:03:04")] == [
        5400, 600, 5400, 172800, 93784]


def test_zero_gpus_is_a_cpu_job_with_one_task_per_device():
    res = SlurmResources.from_config({"gpus_per_node": 0}, {"devices": 2, "num_nodes": 1, "accelerator": "cpu"})
    assert (res.ntasks_per_node, res.gpus_per_node) == (2, None)
