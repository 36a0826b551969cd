"""DeepSpeed ZeRO and FSDP2 folders consolidate to one fp32 state dict that loads strictly into the plain net
and gives the distributed model's own results; folders are complete or absent."""
from __future__ import annotations

import json
import os

import pytest
import torch

from tests.distributed.reference_eval import fixed_batch, loss_and_logits, plain_net
from tests.distributed.runs import GLOBAL_BATCH
from trainers.consolidate import checkpoint_kind, consolidate_checkpoint, load_net_state_dict, write_consolidated
from trainers.dir_checkpoint import publish, staging_path
from trainers.rundir import COMPLETE_MARKER, newest_complete_checkpoint, resolve_resume_checkpoint

SHARDED = {"fsdp": "dcp", "deepspeed_stage_1": "deepspeed", "deepspeed_stage_2": "deepspeed",
           "deepspeed_stage_3": "deepspeed", "deepspeed_stage_3_offload": "deepspeed"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHARDED))
def test_sharded_checkpoint_consolidates_into_the_plain_net(strategy_runs, name, tmp_path):
    run = strategy_runs.get(name)
    info = run.run_json()
    best = run.run_dir / "checkpoints" / os.path.basename(info["best_checkpoint"])
    assert best.is_dir() and (best / COMPLETE_MARKER).is_file(), f"{best} is not a complete checkpoint folder"
    assert checkpoint_kind(best) == SHARDED[name]
    assert not list(best.parent.glob(".*")), "staging folders left behind"
    assert newest_complete_checkpoint(run.run_dir).is_dir()  # resume=auto picks the folders

    state = consolidate_checkpoint(best)
    assert all(k.startswith("net.") for k in state) and all(
        v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    net = plain_net(run.run_dir, best)  # load_net_state_dict + strict load_state_dict
    # same outputs: the distributed model's own test/loss (2 ranks x 8 of the first 16 test samples, synced)
    loss, _ = loss_and_logits(net, fixed_batch(run.run_dir, GLOBAL_BATCH))
    reported = json.loads((run.run_dir / "metrics.json").read_text())["test/loss"]
    assert loss == pytest.approx(reported, rel=1e-4, abs=1e-5), (loss, reported)

    single_file = write_consolidated(best, tmp_path / "consolidated.ckpt")
    assert checkpoint_kind(single_file) == "lightning"
    again = load_net_state_dict(single_file)
    assert again.keys() == load_net_state_dict(best).keys()
    assert all(torch.equal(again[k], state[f"net.{k}"]) for k in again)


def test_interrupted_folder_is_never_chosen_and_publish_swaps_atomically(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    final = checkpoints / "last.ckpt"
    # a save killed mid-way: the staging folder holds shards but no marker
    staging = staging_path(final)
    (staging / "checkpoint").mkdir(parents=True)
    (staging / "latest").write_text("checkpoint")
    assert newest_complete_checkpoint(tmp_path) is None
    # a folder without the marker under the final name (not written by Shipyard) is refused too
    final.mkdir(parents=True)
    (final / "latest").write_text("checkpoint")
    assert newest_complete_checkpoint(tmp_path) is None
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume_checkpoint(tmp_path, str(final), None)
    with pytest.raises(ValueError, match=COMPLETE_MARKER):
        consolidate_checkpoint(final)
    # publishing: marker written last inside, then the folder replaces the old one in one rename
    publish(staging, final, world_size=2)
    assert (final / COMPLETE_MARKER).is_file() and (final / "checkpoint").is_dir()
    assert json.loads((final / COMPLETE_MARKER).read_text())["world_size"] == 2
    assert not staging.exists() and sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt"]
    assert newest_complete_checkpoint(tmp_path) == final


def test_unknown_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="neither a DeepSpeed checkpoint"):
        checkpoint_kind(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_net_state_dict(tmp_path / "missing.ckpt")


@pytest.mark.slow
def test_zero3_folder_resumes_to_the_uninterrupted_result(strategy_runs):
    from tests.distributed.runs import RESUMED, STEPS, STRAIGHT

    first = strategy_runs.get("deepspeed_stage_3").run_dir / "checkpoints" / "last.ckpt"
    resumed = strategy_runs.get(RESUMED)
    info = resumed.run_json()
    assert info["attempts"][0]["resumed_from"] == str(first) and info["global_step"] == 2 * STEPS
    straight = strategy_runs.get(STRAIGHT)
    batch = fixed_batch(straight.run_dir, GLOBAL_BATCH)
    want, want_logits = loss_and_logits(plain_net(straight.run_dir, straight.run_dir / "checkpoints" / "last.ckpt"), batch)
    got, got_logits = loss_and_logits(plain_net(resumed.run_dir, resumed.run_dir / "checkpoints" / "last.ckpt"), batch)
    # weights and Adam moments came back from the partitioned folder: the second epoch continues exactly
    assert got == pytest.approx(want, rel=2e-3) and torch.allclose(got_logits, want_logits, atol=5e-3), (got, want)
    after_first, _ = loss_and_logits(plain_net(resumed.run_dir, first), batch)
    assert abs(after_first - want) > 10 * 2e-3 * want  # the second epoch changed the result measurably


@pytest.mark.slow
def test_export_reads_a_deepspeed_folder_checkpoint(strategy_runs, tmp_path):
    """export.py consolidates a ZeRO folder itself: TorchScript equal to the consolidated plain net."""
    import shutil

    from tests.conftest import run_entry

    run = strategy_runs.get("deepspeed_stage_2")
    dest = tmp_path / "run"
    shutil.copytree(run.run_dir, dest)
    run_entry("export.py", f"run_dir={dest}", "package=false", "targets=[torchscript]", "parity.batches=1")
    report = json.loads((dest / "export" / "export.json").read_text())
    assert report["targets"]["torchscript"]["status"] == "exported"
    assert report["targets"]["torchscript"]["parity"]["max_abs_diff"] <= 1e-4
    assert os.path.isdir(report["checkpoint"])
