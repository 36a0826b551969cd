"""GPU check orchestrator: every case in its own timed-out subprocess, a compact table, JSON to $OUT/gpu_check.json.

Budget: GPU_CHECK_BUDGET_S (default 450 s, under the 8 minutes a lent H100/H200 call gets). Cases run in
priority order; a case that would not fit in what is left is skipped and reported, and a name in
GPU_CHECK_CASES that is no case is reported as failed (exit 1): nothing is silently dropped. The LM cases
(lm_llama_350m, benchmarks/gpu_lm_cases.py) run only when named (GPU_CHECK_CASES=lm for all of them).
"""
from __future__ import annotations

import getpass
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DRY_RUN = os.environ.get("GPU_CHECK_DRY_RUN") == "1"

# (case, timeout seconds on a GPU): priority order, the baselines first
CASES: list[tuple[str, int]] = [
    ("plain_eager", 90),
    ("single_eager", 100),
    ("plain_compile", 150),
    ("single_compile", 150),
    ("fsdp_eager", 120),
    ("deepspeed_stage_2_eager", 150),
    ("export_handler", 90),
    ("fsdp_compile", 150),
    ("deepspeed_stage_2_compile", 150),
    # lm_llama_350m (conf/experiment) through the LM task, run only when named: GPU_CHECK_CASES=lm (all of
    # them) or lm_plain_eager,lm_single_eager,... (the LM plain loop of the same mode is their baseline)
    ("lm_plain_eager", 120),
    ("lm_single_eager", 150),
    ("lm_fsdp_eager", 150),
    ("lm_deepspeed_stage_2_eager", 180),
    ("lm_plain_compile", 200),
    ("lm_single_compile", 200),
    ("lm_fsdp_compile", 200),
    ("lm_deepspeed_stage_2_compile", 200),
]
LM_TARGETS = "targets: single >= 45 % MFU and >= 0.97 of lm_plain; fsdp >= 0.95"
MIN_CASE_S = 40  # a trainer case needs this much just to import and build


def run_case(name: str, timeout: float, workdir: Path) -> dict[str, Any]:
    """One case in a fresh interpreter; its JSON, or why it produced none (exit code, timeout, stderr tail)."""
    out = workdir / f"{name}.json"
    log = workdir / f"{name}.log"
    # the case's scratch (run folders, checkpoints: GBs on a GPU) goes in its own TMPDIR, removed after it;
    # inductor's compile cache stays where it was, shared by the cases: torch._inductor's default_cache_dir()
    # spelled out, since importing it would load torch into this orchestrator (seconds of the GPU budget)
    scratch = workdir / f"{name}.scratch"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch)}
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"torchinductor_{getpass.getuser()}"))
    started = time.perf_counter()
    with log.open("w") as fh:
        try:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_cases", name, str(out)], cwd=REPO,
                                  env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    wall = round(time.perf_counter() - started, 1)
    if code == 0 and out.exists():
        return {"case": name, "status": "ok", "wall_s": wall, **json.loads(out.read_text())}
    tail = log.read_text(errors="replace").strip().splitlines()[-25:]
    reason = f"timed out after {timeout:.0f} s" if code is None else f"exit code {code}"
    errors = [line for line in tail if "Error" in line or "error" in line]
    return {"case": name, "status": "failed", "wall_s": wall, "reason": reason,
            "error": errors[-1] if errors else (tail[-1] if tail else ""), "log_tail": tail}


def summary_rows(results: list[dict[str, Any]]) -> list[str]:
    """A compact fixed-width table: tokens/s, MFU, ratio to the plain loop of the same compile mode."""
    def key(case: str) -> tuple[bool, str]:  # (LM case?, compile mode): each family has its own plain loop
        return case.startswith("lm_"), case.split("_")[-1]

    base = {key(r["case"]): r.get("tokens_per_s") for r in results
            if r["case"].removeprefix("lm_").startswith("plain_") and r["status"] == "ok"}
    rows = [f"{'case':28s} {'status':8s} {'tok/s':>10s} {'MFU':>6s} {'vs plain':>8s} {'cb MFU':>7s} {'wall s':>7s}  note"]
    for r in results:
        if r["status"] != "ok":
            rows.append(f"{r['case']:28s} {r['status']:8s} {'':>10s} {'':>6s} {'':>8s} {'':>7s} {r['wall_s']:7.1f}  "
                        f"{r.get('reason', '')}: {r.get('error', '')[:110]}")
            continue
        if r["case"] == "export_handler":
            cnn, gpt = r["digits_cnn"], r["gpt_classifier"]
            rows.append(f"{'export_handler':28s} ok       digits request p50 {cnn['batch_1']['p50_ms']} ms p99 {cnn['batch_1']['p99_ms']} ms (b8 p50 "
                        f"{cnn['batch_8']['p50_ms']}); GPT cls TorchScript b1 p50 {gpt['batch_1']['p50_ms']} ms, b8 p50 {gpt['batch_8']['p50_ms']} ms")
            continue
        tok, mfu = r["tokens_per_s"], r.get("mfu")
        mode = key(r["case"])
        ratio = f"{tok / base[mode]:.3f}" if base.get(mode) and "plain_" not in r["case"] else ""
        cb = (r.get("callback") or {}).get("perf/mfu")
        note = r.get("strategy_class", "")
        if r.get("checkpoint"):
            c = r["checkpoint"]
            note += f"; ckpt save {c['save_seconds']} s + consolidate {c['consolidate_seconds']} s, strict load {c['strict_load']}, max|Δ| {c['max_abs_diff_vs_live']:.2e}"
        rows.append(f"{r['case']:28s} ok       {tok:10.0f} {(mfu or 0) * 100:5.1f}% {ratio:>8s} {(cb or 0) * 100:6.1f}% {r['wall_s']:7.1f}  {note}")
    return rows


def main() -> int:
    """Run the cases within the budget, print the table, write the JSON."""
    budget = float(os.environ.get("GPU_CHECK_BUDGET_S", "450"))
    if DRY_RUN:  # exercise dynamo + AOTAutograd on the CPU without inductor's minutes of C++ builds
        os.environ.setdefault("GPU_CHECK_COMPILE_BACKEND", "aot_eager")
        budget = float(os.environ.get("GPU_CHECK_BUDGET_S", "900"))
    only = [c for c in os.environ.get("GPU_CHECK_CASES", "").split(",") if c]
    if "lm" in only:  # the LM group: every lm_* case
        only = [c for c in only if c != "lm"] + [name for name, _ in CASES if name.startswith("lm_")]
    started = time.perf_counter()
    out_dir = os.environ.get("OUT")
    # the cases' logs and JSON: beside the report when there is an $OUT (they come back with it)
    workdir = Path(out_dir) / "gpu_check_logs" if out_dir else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    workdir.mkdir(parents=True, exist_ok=True)
    known = [name for name, _ in CASES]
    # a requested name that is not a case is a failed result with the reason, never silently dropped
    results: list[dict[str, Any]] = [
        {"case": name, "status": "failed", "wall_s": 0.0, "reason": "unknown_case",
         "error": f"GPU_CHECK_CASES names {name!r}, which is not a case of benchmarks/gpu_check.py; known: {known}"}
        for name in only if name not in known]
    for result in results:
        print(f"[gpu_check] {result['case']}: failed ({result['error']})", flush=True)
    for name, limit in CASES:
        if (only and name not in only) or (not only and name.startswith("lm_")):
            continue
        left = budget - (time.perf_counter() - started)
        if left < MIN_CASE_S:
            results.append({"case": name, "status": "skipped", "wall_s": 0.0, "reason": "budget",
                            "error": f"{left:.0f} s of the {budget:.0f} s budget left"})
            print(f"[gpu_check] {name}: skipped ({left:.0f} s left)", flush=True)
            continue
        timeout = min(limit * (3 if DRY_RUN else 1), left)
        print(f"[gpu_check] {name}: running (timeout {timeout:.0f} s)", flush=True)
        result = run_case(name, timeout, workdir)
        results.append(result)
        print(f"[gpu_check] {name}: {result['status']} in {result['wall_s']} s"
              + (f" ({result['reason']}: {result['error'][:200]})" if result["status"] != "ok" else ""), flush=True)
    report = {"dry_run": DRY_RUN, "python": platform.python_version(), "wall_s": round(time.perf_counter() - started, 1),
              "logs": str(workdir), "results": results}
    print("\n".join(["", "GPU check summary" + (" (DRY RUN: tiny model on CPU)" if DRY_RUN else ""), *summary_rows(results)]))
    if any(r["case"].startswith("lm_") for r in results):
        print(f"LM cases (lm_llama_350m) {LM_TARGETS}")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {Path(out_dir) / 'gpu_check.json'}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
