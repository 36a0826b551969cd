"""The Markdown table of a `make bench` report (benchmarks/results/latest.md)."""
from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) else str(value)


def _rows(name: str, r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, ours, baseline, ratio, target) rows of one section's result."""
    rows = []
    if name == "training_overhead":
        for exp, v in r.items():
            rows.append((f"train steps/s: {exp}", _f(v["shipyard_steps_per_s"]), f"{_f(v['plain_steps_per_s'])} (plain loop)",
                         _f(v["ratio"]), "≥ 0.97"))
            if "bare_lightning_steps_per_s" in v:
                rows.append((f"train steps/s vs bare Lightning: {exp}", _f(v["shipyard_steps_per_s"]),
                             f"{_f(v['bare_lightning_steps_per_s'])} (bare Trainer)", _f(v["ratio_vs_bare_lightning"]),
                             "≥ 0.97"))
                rows.append((f"Shipyard's own ms/step above bare Lightning: {exp}", _f(v["overhead_ms_per_step"]),
                             "0 (bare Trainer)", "-", "≤ 0.3 ms"))
    elif name == "lm_training":
        rows.append((f"LM train tokens/s: {r['experiment']} ({_f(r['step_ms']['shipyard'])} ms/step)",
                     _f(r["shipyard_tokens_per_s"]), f"{_f(r['plain_tokens_per_s'])} (plain loop)", _f(r["ratio"]),
                     "≥ 0.97"))
    elif name == "data_loading":
        for exp, v in r.items():
            rows.append((f"loader samples/s: {exp} ({v['datamodule']}, workers={v['num_workers']})",
                         _f(v["loader_samples_per_s"]), f"{_f(v['model_samples_per_s'])} (model step rate)",
                         _f(v["ratio"]), "> 1"))
    elif name == "startup":
        f, i = r["first_step_seconds"], r["import_seconds"]
        rows.append(("s to first step: python train.py", _f(f["train_py"]), f"{_f(f['plain_script'])} (plain script)",
                     _f(f["ratio"]), "report"))
        rows.append(("s to import trainers.run", _f(i["trainers.run"]), f"{_f(i['torch'])} (import torch)",
                     _f(i["ratio"]), "report"))
    elif name == "serving":
        rows += _serving_rows(r)
    elif name == "serving_load":
        o = r["overload"]
        rows.append((f"open loop at {_f(o['offered_over_capacity'])}x capacity through the gateway: {o['status_counts']}",
                     f"p50 {_f(o['p50_ms'])} / p99 {_f(o['p99_ms'])} ms", f"{_f(r['capacity_rps_8_clients'])} req/s "
                     f"capacity (ab -k, 8 clients)", f"{_f(o['offered_rps'])} req/s offered", "0 x 5xx, 0 lost"))
        rows.append(("overload 5xx / lost", f"{o['5xx']} / {o['lost']}", "", "", "0 / 0"))
    elif name == "scoring":
        rows.append(("scoring records/s", _f(r["scoring_rps"]), f"{_f(r['bare_loop_rps'])} (bare model(x) loop)",
                     _f(r["scoring_over_bare_loop"]), "≥ 0.9"))
        if "processes" in r:
            p = r["processes"]
            rows.append(("scoring records/s, 2 processes", _f(p["two"]["records_per_second"]),
                         f"{_f(p['one']['records_per_second'])} (1 process)", _f(p["two_over_one"]), "report"))
    elif name == "lm_data":
        t, m = r["tokenize"], r["memory"]
        rows.append((f"tokenize MB/s ({t['megabytes']} MB, {t['files']} files)", _f(t["ours_mb_per_s"]),
                     f"{_f(t['encode_batch_mb_per_s'])} (tokenizers encode_batch)", _f(t["ratio"]), "≥ 0.8"))
        rows.append((f"LM datamodule peak RSS MB, one epoch, {m['scale']}× corpus", _f(m["large"]["peak_rss_mb"]),
                     f"{_f(m['small']['peak_rss_mb'])} (1× corpus)", _f(m["ratio"]), "≤ 1.1"))
    elif name == "lm_serving":
        h, b, f = r["handler_vs_plain"], r["batched_vs_unbatched"], r["first_token_ms"]
        rows.append((f"LM handler tokens/s, in process ({h['tokens']} tokens)", _f(h["handler_tokens_per_s"]),
                     f"{_f(h['plain_tokens_per_s'])} (plain greedy loop)", _f(h["ratio"]), "≥ 0.9"))
        rows.append((f"LM tokens/s, {b['clients']} clients, batched (8)", _f(b["batched_tokens_per_s"]),
                     f"{_f(b['unbatched_tokens_per_s'])} (unbatched)", _f(b["ratio"]), "≥ 3"))
        rows.append((f"time to first streamed token, HTTP ({f['requests']} requests)", f"p50 {_f(f['p50_ms'])} ms",
                     f"p99 {_f(f['p99_ms'])} ms", "", "report"))
    elif name == "lm_decode":
        k, c = r["kv_vs_recompute"], r["context"]
        rows.append((f"LM decode tokens/s, KV cache ({k['new_tokens']} new after {k['prompt_tokens']}, TorchScript)",
                     _f(k["cached_tokens_per_s"]), f"{_f(k['recompute_tokens_per_s'])} (recompute whole sequence)",
                     _f(k["ratio"]), "report"))
        rows.append((f"LM decode ms/token at context {c['long_context']}", _f(c["long_ms_per_token"]),
                     f"{_f(c['short_ms_per_token'])} (context {c['short_context']})", _f(c["ratio"]), "≤ 1.5"))
    return rows


def _paired(r: dict[str, Any], key: str) -> str:
    """A serving ratio with the 95 % interval of its median over the rounds, where the run recorded it."""
    lo_hi = r.get("ratios", {}).get(key, {}).get("ci95")
    return f"{_f(r[key])} (95 % interval {_f(lo_hi[0])}-{_f(lo_hi[1])})" if lo_hi else _f(r[key])


def _serving_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    ours, stock, n = r["ours"], r["stock"], f"ab -k, median of {r['repeats']} interleaved rounds' ratios"
    rows = [(f"HTTP p50 ms, 1 client, unbatched ({n})", _f(ours["p50_ms"]), f"{_f(stock['p50_ms'])} (stock BaseHandler)",
             _paired(r, "ours_over_stock_p50"), "≤ 1.1"),
            ("HTTP p99 ms, 1 client, unbatched", _f(ours["p99_ms"]), f"{_f(stock['p99_ms'])} (stock BaseHandler)",
             _f(ours["p99_ms"] / stock["p99_ms"]) if ours["p99_ms"] and stock["p99_ms"] else "n/a (too few requests)",
             "report"),
            (f"req/s, {r['clients']} clients, unbatched ({n})", _f(ours["throughput_rps"]),
             f"{_f(stock['throughput_rps'])} (stock BaseHandler)", _paired(r, "ours_over_stock_throughput"), "≥ 0.95"),
            ("worker CPU ms/request, 8 clients", _f(ours["cpu_ms_per_request"]["worker_python"]),
             f"{_f(stock['cpu_ms_per_request']['worker_python'])} (stock BaseHandler)",
             _f(ours["cpu_ms_per_request"]["worker_python"] / max(stock["cpu_ms_per_request"]["worker_python"], 1e-9)),
             "report")]
    if "stock_topk" in r:  # what the answer costs: the stock handler answering top-5 JSON as ours does
        rows.append((f"req/s, {r['clients']} clients, unbatched, vs stock answering top-5 JSON",
                     _f(ours["throughput_rps"]), f"{_f(r['stock_topk']['throughput_rps'])} (stock + top-5 answer)",
                     _paired(r, "ours_over_stock_topk_throughput"), "report"))
    if "stock_again" in r:  # the A/A control: what "nothing changed" measures in this run
        again, steal = r["stock_again"], r["cpu_steal_share"]
        stolen = f"CPU stolen by the hypervisor: median {_f(steal['median'] * 100)} %, max {_f(steal['max'] * 100)} %"
        rows.append((f"A/A control, req/s: the stock archive registered twice ({stolen})", _f(again["throughput_rps"]),
                     f"{_f(stock['throughput_rps'])} (stock BaseHandler)",
                     _paired(r, "stock_again_over_stock_throughput"), "report"))
        rows.append(("A/A control, HTTP p50 ms", _f(again["p50_ms"]), f"{_f(stock['p50_ms'])} (stock BaseHandler)",
                     _paired(r, "stock_again_over_stock_p50"), "report"))
    for model, b in r.get("batching", {}).items():
        ip = b["in_process_ms_per_request"]
        rows.append((f"req/s, {b['clients']} clients, batched ({b['batch_size']}): {model} "
                     f"(median of {b['repeats']} interleaved rounds' ratios)",
                     _f(b["batched"]["throughput_rps"]), f"{_f(b['unbatched']['throughput_rps'])} (unbatched)",
                     _paired(b, "batched_over_unbatched"), "≥ 3" if model == "text_minilm" else "report"))
        rows.append((f"in-process ms/request, batch 8 (vs batch 1): {model}", _f(ip["batch_8"]), _f(ip["batch_1"]),
                     _f(ip["batch_1_over_batch_8"]), "report"))
    return rows


def markdown(report: dict[str, Any]) -> str:
    """Machine line + one table over all sections (failed sections listed with their error)."""
    m = report["machine"]
    lines = [
        "# Shipyard benchmarks" + (" (quick smoke run: figures not meaningful)" if report.get("quick") else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"Python {m['python']}, device {m['device']}, load average {m.get('load_average_1m')} → "
        f"{m.get('load_average_1m_end')}; started {report['started']}.",
        "",
        "Ratios: ours ÷ baseline from the same run (medians of repeats after a warm-up); for times (ms, s) lower is better.",
        "",
        "| figure | Shipyard | baseline | ratio | target |",
        "|---|---|---|---|---|",
    ]
    failed = []
    for name, section in report["sections"].items():
        if section["status"] != "ok":
            failed.append(f"- **{name}** failed: {section['error'].splitlines()[0][:300]}")
            continue
        lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in _rows(name, section["result"])]
    if failed:
        lines += ["", "Failed sections:", *failed]
    return "\n".join(lines) + "\n"
