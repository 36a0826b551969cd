"""Every strategy trains the tiny Llama LM on 2 CPU processes (gloo) to the single-process result.

Each run is a real `train.py` subprocess (tests/distributed/lm_runs.py: same seeded weights, same global batches
of token windows, constant LR); the comparison loads every run's consolidated final weights into the plain
CausalLM here and scores the first GLOBAL_BATCH test windows. Also: FSDP2 made each decoder layer its own FSDP
unit (the line shard_net logs from the sharded module tree), and the ZeRO-3 and FSDP2 folder checkpoints
consolidate to one fp32 state dict that loads strictly into the plain net and reproduces the run's test/loss.
"""
from __future__ import annotations

import csv
import json
import os
import re

import pytest
import torch

from tests.distributed.lm_runs import GLOBAL_BATCH, RUNS, STEPS
from tests.distributed.reference_eval import fixed_batch, lm_loss_and_logits, plain_net
from tests.distributed.runs import RTOL, Run
from trainers.consolidate import checkpoint_kind, consolidate_checkpoint
from trainers.fsdp import ROOT, UNITS_LINE

DISTRIBUTED = [name for name in RUNS if name != "single"]
FOLDERS = {"fsdp": "dcp", "deepspeed_stage_3": "deepspeed", "deepspeed_stage_3_offload": "deepspeed"}
LOGIT_ATOL = 5e-3  # the classification tests' bound on the logits of the same samples


def _metrics(run: Run) -> dict:
    """metrics.json (val/test) plus the epoch's training loss from the CSV logger's rows."""
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    with open(run.run_dir / "csv" / "metrics.csv", newline="") as rows:
        train = [float(row["train/loss_epoch"]) for row in csv.DictReader(rows) if row.get("train/loss_epoch")]
    assert len(train) == 1, f"{run.name}: {len(train)} train/loss_epoch rows"
    return {**metrics, "train/loss_epoch": train[0]}


def _last(run: Run):
    return run.run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def lm_single(lm_strategy_runs):
    """The single-process reference: its run, the fixed test windows, its final loss and logits on them."""
    run = lm_strategy_runs.get("single")
    batch = fixed_batch(run.run_dir, GLOBAL_BATCH)
    loss, logits = lm_loss_and_logits(plain_net(run.run_dir, _last(run)), batch)
    return run, batch, loss, logits


@pytest.mark.slow
def test_lm_single_process_reference_trained(lm_single):
    run, batch, loss, _ = lm_single
    assert run.run_json()["global_step"] == STEPS
    assert batch["input_ids"].shape == (GLOBAL_BATCH, 32)
    untrained, _ = lm_loss_and_logits(plain_net(run.run_dir), batch)  # model.net.seed: the runs' initial weights
    # training moved the loss far more than the tolerance the strategies are held to
    assert abs(untrained - loss) > 20 * RTOL * loss, (untrained, loss)
    print(f"single: {run.seconds:.1f}s, loss {untrained:.4f} untrained -> {loss:.6f}")


@pytest.mark.slow
@pytest.mark.parametrize("name", DISTRIBUTED)
def test_lm_strategy_matches_single_process(lm_strategy_runs, lm_single, name):
    single, batch, reference_loss, reference_logits = lm_single
    run = lm_strategy_runs.get(name)
    info = run.run_json()  # run_dir asserts one directory: every rank used rank 0's run id
    assert len(info["attempts"]) == 1 and info["global_step"] == STEPS
    assert info["cost"]["devices"] * info["cost"]["nodes"] == 2
    metrics, reference = _metrics(run), _metrics(single)
    assert {"train/loss_epoch", "val/loss", "val/perplexity", "test/loss", "test/perplexity"} <= metrics.keys()
    # the losses the run itself reported: the mean over its training steps (every rank's share, synced) and test
    for key in ("train/loss_epoch", "test/loss"):
        assert metrics[key] == pytest.approx(reference[key], rel=RTOL), (name, key, metrics[key], reference[key])

    loss, logits = lm_loss_and_logits(plain_net(run.run_dir, _last(run)), batch)
    diff = float((logits - reference_logits).abs().max())
    print(f"{name}: {run.seconds:.1f}s, loss {loss:.6f} vs {reference_loss:.6f} "
          f"(rel {loss / reference_loss - 1:+.1e}), max |logit diff| {diff:.1e}")
    assert loss == pytest.approx(reference_loss, rel=RTOL), f"{name}: loss {loss} vs single process {reference_loss}"
    assert diff <= LOGIT_ATOL, f"{name}: logits differ by {diff} from the single process's"


@pytest.mark.slow
def test_fsdp2_makes_each_decoder_layer_its_own_unit(lm_strategy_runs):
    run = lm_strategy_runs.get("fsdp")
    lines = [line for line in "".join(run.logs).splitlines() if UNITS_LINE in line]
    # once: rank 0 only, and configure_model running again for validate/test does not shard again
    assert len(lines) == 1, lines
    found = re.search(rf"{UNITS_LINE} \((\d+) ranks\): (.+)$", lines[0])
    assert found and found.group(1) == "2", lines[0]
    net = plain_net(run.run_dir)
    names = {id(module): name for name, module in net.named_modules()}
    layers = [names[id(block)] for block in net.blocks()]  # hf.model.layers.0, ...
    assert len(layers) == 2
    # the root (embeddings, final norm, tied head) and each decoder layer, in module order; nothing inside a layer
    assert found.group(2).split(", ") == [ROOT, *layers], lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FOLDERS))
def test_lm_folder_checkpoint_consolidates_to_one_fp32_state_dict(lm_strategy_runs, name):
    run = lm_strategy_runs.get(name)
    best = run.run_dir / "checkpoints" / os.path.basename(run.run_json()["best_checkpoint"])
    assert best.is_dir() and checkpoint_kind(best) == FOLDERS[name], best
    state = consolidate_checkpoint(best)
    assert all(key.startswith("net.") for key in state)
    assert all(value.dtype == torch.float32 for value in state.values()), {v.dtype for v in state.values()}
    # the tied output head comes back as the input embedding (one parameter, saved once by the sharded writers)
    assert torch.equal(state["net.hf.lm_head.weight"], state["net.hf.model.embed_tokens.weight"])

    net = plain_net(run.run_dir)
    net.load_state_dict({key.removeprefix("net."): value for key, value in state.items()}, strict=True)
    loss, _ = lm_loss_and_logits(net.eval(), fixed_batch(run.run_dir, GLOBAL_BATCH))
    # the run's own test/loss: 2 ranks x 8 of the same first 16 test windows, from this checkpoint, token-weighted
    reported = _metrics(run)["test/loss"]
    print(f"{name}: consolidated {len(state)} tensors, loss {loss:.6f} vs reported test/loss {reported:.6f}")
    assert loss == pytest.approx(reported, rel=1e-4, abs=1e-5), (loss, reported)
