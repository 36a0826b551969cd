"""The GPU check script, exercised on the CPU: GPU_CHECK_DRY_RUN=1 runs every case with a tiny decoder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpt import GPT, PRESETS
from trainers.flops import decoder_flops_per_token

REPO = Path(__file__).resolve().parent.parent
DRY_RUN_CASES = ("plain_eager", "single_eager", "fsdp_eager", "fsdp_compile",
                 "deepspeed_stage_2_eager", "export_handler")


def test_decoder_flops_formula_matches_a_flop_counter() -> None:
    """6N + 12LHQT against torch's FlopCounterMode on one forward+backward of the tiny decoder."""
    from torch.utils.flop_counter import FlopCounterMode
    import torch

    cfg = PRESETS["tiny"]
    model = GPT(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # the math backend spells attention as bmm's the counter sees (fused CPU kernels are not counted)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(ids).float().logsumexp(-1).sum().backward()
    counted = counter.get_total_flops() / ids.numel()
    formula = model.flops_per_token()
    # the formula leaves out layer norms, softmax and the embedding lookup; matmuls dominate
    assert formula == decoder_flops_per_token(model.num_params(), 2, 2, 32, cfg.seq_len)
    assert 0.98 < counted / formula < 1.02, (counted, formula)


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_strategy(tmp_path: Path) -> None:
    """gpu_check.sh runs every strategy (plain, single, fsdp, deepspeed_stage_2) eager, compiled through FSDP2
    (AC → compile → fully_shard), and the export check, and reports each; a name that is no case is reported
    as failed (exit 1) while the others still run, and no case leaves its scratch behind. The other compiled
    cases are left to the GPU run: each adds a minute of dynamo tracing on this CPU for the same torch.compile."""
    scratch = tmp_path / "tmp"  # the machine's temp folder, as the cases see it
    scratch.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "GPU_CHECK_DRY_RUN": "1", "GPU_CHECK_PYTHON": sys.executable, "OUT": str(out),
           "TMPDIR": str(scratch), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GPU_CHECK_CASES": ",".join([*DRY_RUN_CASES, "no_such_case_is_defined"])}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    report = json.loads((out / "gpu_check.json").read_text())
    results = {r["case"]: r for r in report["results"]}
    assert set(results) == {*DRY_RUN_CASES, "no_such_case_is_defined"}  # the unknown name reported, not dropped
    unknown = results.pop("no_such_case_is_defined")
    assert unknown["status"] == "failed" and unknown["reason"] == "unknown_case"
    assert "not a case" in unknown["error"] and "plain_eager" in unknown["error"]
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    for name, result in results.items():
        assert result["status"] == "ok", (name, result)
        if name != "export_handler":
            assert result["tokens_per_s"] > 0 and result["steps_timed"] == 2
    assert results["fsdp_eager"]["strategy_class"] == "FSDP2Strategy"
    assert "DeepSpeed" in results["deepspeed_stage_2_eager"]["strategy_class"]
    for name in ("fsdp_eager", "deepspeed_stage_2_eager"):
        assert results[name]["checkpoint"]["strict_load"] == "ok"
        assert results[name]["checkpoint"]["max_abs_diff_vs_live"] < 1e-2
    assert results["export_handler"]["gpt_classifier"]["batch_1"]["max_abs_diff_vs_eager"] < 1e-4
    assert "GPU check summary" in proc.stdout
    # the cases' logs come back beside the report; their scratch (run folders, checkpoints) is gone
    assert Path(report["logs"]) == out / "gpu_check_logs"
    assert sorted(p.name for p in (out / "gpu_check_logs").iterdir()) == sorted(
        f"{name}.{ext}" for name in DRY_RUN_CASES for ext in ("json", "log"))
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []  # shared compile cache


def test_a_crashing_case_is_reported_with_its_error(tmp_path: Path) -> None:
    """A case whose process fails comes back as a failed result carrying the error line from its log."""
    from benchmarks import gpu_check

    result = gpu_check.run_case("no_such_case", 60, tmp_path)  # the runner itself raises KeyError
    assert result["status"] == "failed" and result["reason"] == "exit code 1" and "KeyError" in result["error"]
    assert not (tmp_path / "no_such_case.scratch").exists()


def test_lm_cases_are_known_and_their_configs_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lm_llama_350m case is a case of both the orchestrator and the runner, picked by GPU_CHECK_CASES=lm,
    and composes: FSDP2 keeps param_dtype=bf16, the others lose that FSDP-only key; an unknown strategy fails."""
    import tempfile

    from benchmarks import gpu_cases, gpu_check, gpu_lm_cases

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # lm_config's run folders (a case's TMPDIR on a GPU)

    names = {f"lm_{s}_{m}" for s in ("plain", "single", "fsdp", "deepspeed_stage_2") for m in ("eager", "compile")}
    assert names <= {name for name, _ in gpu_check.CASES} and names <= set(gpu_cases.CASES)
    targets = {}
    for strategy in gpu_lm_cases.STRATEGIES:
        cfg = gpu_lm_cases.lm_config(strategy, compile_model=True, dry_run=False)
        assert cfg.name == "lm_llama_350m" and cfg.model.compile and cfg.model.net.config.num_hidden_layers == 24
        assert cfg.model.vocab_size == 8192 and cfg.model.seq_len == 1024
        targets[strategy] = cfg.strategy._target_
        assert cfg.strategy.get("param_dtype") == ("bf16" if strategy == "fsdp" else None), strategy
    assert targets == {"single": "trainers.strategies.single_device", "fsdp": "trainers.strategies.fsdp2",
                       "deepspeed_stage_2": "trainers.strategies.deepspeed"}
    with pytest.raises(KeyError, match="not one of"):
        gpu_lm_cases.lm_config("fsdp1", compile_model=False, dry_run=True)
