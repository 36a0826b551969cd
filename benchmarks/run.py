"""`make bench`: every benchmark as a ratio against a baseline measured in the same run.

Writes benchmarks/results/latest.json and latest.md (a table), with the machine described. A section
that fails is recorded with its error and the others still run. BENCH_QUICK=1 (or --quick): tiny repeat
counts, for the smoke test. BENCH_THREADS (default 1): torch intra-op threads for this process and the
processes it starts; on a shared 2-core machine two spinning OpenMP threads made a step 30x slower.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("training_overhead", "lm_training", "data_loading", "startup", "serving", "serving_load", "scoring",
            "lm_data", "lm_serving", "lm_decode")


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"train_repeats": 1, "train_steps": {"digits_cnn": (2, 4), "text_transformer": (2, 4)},
                "data_epochs": 1, "data_repeats": 1, "startup_repeats": 1, "serving_requests": 16,
                "scoring_repeats": 1, "lm_data_repeats": 1, "lm_data_files": 12, "lm_decode": (1, 8, 4),
                "lm_training": (1, 2, 4),
                "serving_compare": {"warmup": 40, "repeats": 1, "sequential": 16, "requests": 32},
                "batching": {"text_minilm": {"requests": 32, "repeats": 1, "warmup": 16, "in_process_repeats": 3},
                             "digits_cnn": {"requests": 32, "repeats": 1, "warmup": 16, "in_process_repeats": 3}},
                "serving_load": {"seconds": 2.0, "warmup": 100, "repeats": 1}}
    return {"train_repeats": 3, "train_steps": None, "data_epochs": 3, "data_repeats": 3, "startup_repeats": 3,
            "serving_requests": 200, "scoring_repeats": 3, "lm_data_repeats": 3, "lm_data_files": None,
            "lm_decode": (3, 128, 32), "lm_training": (3, 5, 30),
            "serving_compare": {},  # serving_compare.bench's defaults (its docstring says why those)
            "batching": {"text_minilm": {},  # serving_batching.bench's defaults (its docstring says why)
                         "digits_cnn": {"requests": 1000, "warmup": 2000}},
            "serving_load": {"seconds": 10.0, "warmup": 4000, "repeats": 3}}


def _sections(s: dict[str, Any], workdir: Path, only: set[str]) -> dict[str, Callable[[], Any]]:
    exported: list[Any] = []

    def export() -> Any:  # one trained + exported digits_cnn for serving and scoring
        if not exported:
            from benchmarks.exported import train_and_export_digits

            exported.append(train_and_export_digits(workdir / "exported"))
        return exported[0]

    def training() -> Any:
        from benchmarks import training_overhead

        return training_overhead.bench(repeats=s["train_repeats"], steps=s["train_steps"])

    def lm_training() -> Any:
        from benchmarks import lm_training as lm_training_bench

        repeats, warmup, timed = s["lm_training"]
        return lm_training_bench.bench(repeats=repeats, warmup=warmup, timed=timed)

    def data() -> Any:
        from benchmarks import data_loading

        return data_loading.bench(epochs=s["data_epochs"], repeats=s["data_repeats"])

    def startup() -> Any:
        from benchmarks import startup as startup_bench

        return startup_bench.bench(repeats=s["startup_repeats"])

    def serving() -> Any:  # ours vs the stock handler (digits_cnn); batched vs unbatched (text_minilm, digits_cnn)
        from benchmarks import serving_batching, serving_compare
        from benchmarks.exported import train_and_export_minilm

        result = serving_compare.bench(export(), **s["serving_compare"])
        minilm = train_and_export_minilm(workdir / "exported_minilm")
        result["batching"] = {
            "text_minilm": serving_batching.bench(minilm, "application/json", **s["batching"]["text_minilm"]),
            "digits_cnn": serving_batching.bench(export(), "application/octet-stream", **s["batching"]["digits_cnn"])}
        return result

    def serving_load() -> Any:
        from benchmarks.serving_load import bench_load

        exp = export()
        return bench_load(exp.mar, exp.sample.read_bytes(), **s["serving_load"])

    def scoring() -> Any:
        from benchmarks.exported import digits_png_folder
        from benchmarks.scoring_bench import bench_scoring

        folder = digits_png_folder(workdir / "score_input", 64 if s["scoring_repeats"] == 1 else 512)
        return bench_scoring(export().export_dir, folder, repeats=s["scoring_repeats"], torch_threads=1,
                             processes=s["scoring_repeats"] > 1)

    def lm_data() -> Any:
        from benchmarks import lm_data as lm_data_bench

        return lm_data_bench.bench(repeats=s["lm_data_repeats"], files=s["lm_data_files"], workdir=workdir)

    def lm_decode() -> Any:
        from benchmarks import lm_decode as lm_decode_bench

        repeats, new_tokens, steps = s["lm_decode"]
        return lm_decode_bench.bench(repeats=repeats, new_tokens=new_tokens, context_steps=steps)

    def lm_serving() -> Any:
        from benchmarks.exported import train_and_export_lm
        from benchmarks.lm_serving import bench as bench_lm_serving

        lm = train_and_export_lm(workdir / "exported_lm")
        return bench_lm_serving(lm.export_dir, lm.mar, quick=s["serving_requests"] < 100)

    table = {"training_overhead": training, "lm_training": lm_training, "data_loading": data, "startup": startup, "serving": serving,
             "serving_load": serving_load, "scoring": scoring, "lm_data": lm_data,
             "lm_serving": lm_serving, "lm_decode": lm_decode}
    return {k: v for k, v in table.items() if not only or k in only}


def run(quick: bool = False, only: set[str] | None = None, results_dir: Path = RESULTS) -> dict[str, Any]:
    """Run the sections, write latest.json + latest.md into results_dir, return the report."""
    threads = int(os.environ.get("BENCH_THREADS", "1"))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # processes started from here (train.py, TorchServe, scoring)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("SHIPYARD_EVALUATE", "false")
    import torch

    torch.set_num_threads(threads)
    from benchmarks.common import machine
    from benchmarks.report import markdown
    from trainers.rundir import atomic_write_json, atomic_write_text

    report: dict[str, Any] = {"machine": machine(), "quick": quick, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "sections": {}}
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        for name, fn in _sections(_settings(quick), Path(tmp), only or set()).items():
            print(f"[bench] {name} ...", flush=True)
            started = time.perf_counter()
            try:
                report["sections"][name] = {"status": "ok", "result": fn()}
            except Exception as err:  # noqa: BLE001 - one broken section must not hide the others' figures
                report["sections"][name] = {"status": "failed", "error": f"{type(err).__name__}: {err}"[:2000],
                                            "traceback": traceback.format_exc()[-4000:]}
            report["sections"][name]["seconds"] = round(time.perf_counter() - started, 1)
            print(f"[bench] {name}: {report['sections'][name]['status']} "
                  f"({report['sections'][name]['seconds']} s)", flush=True)
    report["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results_dir / "latest.json", report)
    atomic_write_text(results_dir / "latest.md", markdown(report))
    return report


def main(argv: list[str]) -> int:
    """python -m benchmarks.run [--quick] [SECTION ...]"""
    quick = "--quick" in argv or os.environ.get("BENCH_QUICK") == "1"
    only = {a for a in argv if not a.startswith("--")}
    unknown = only - set(SECTIONS)
    if unknown:
        print(f"benchmarks.run: unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    report = run(quick, only)
    print((RESULTS / "latest.md").read_text())
    return 0 if all(s["status"] == "ok" for s in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
