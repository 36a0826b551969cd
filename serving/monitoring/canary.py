"""`python -m serving canary report model_name=NAME`: promote or roll back a canary, from the same window of both versions."""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.schema import MISSING, env_default, from_overrides
from serving.monitoring.drift import DriftThresholds, compare_categorical
from serving.monitoring.window import read_records
from trainers.rundir import atomic_write_json

EXIT = {"promote": 0, "rollback": 3, "wait": 4}
ACCESS_RE = re.compile(r'\[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<uri>\S+)" (?P<status>\d{3}) \d+ '
                       r'rt=(?P<rt>[\d.]+) urt=(?P<urt>\S+) client=\S* model=(?P<model>\S*) version=(?P<version>\S*)')


@dataclass
class CanaryThresholds:
    """When the candidate loses."""

    min_requests: int = 30                  # per version, from the gateway log; fewer → exit 4 (wait)
    max_error_rate_increase: float = 0.01   # candidate 5xx ratio may exceed the champion's by this much
    max_latency_ratio: float = 1.5          # candidate p95 gateway latency / champion p95
    max_confidence_drop: float = 0.05       # champion mean confidence − candidate mean confidence
    alpha: float = 0.01                     # prediction-distribution chi-squared (champion vs candidate)
    min_psi: float = 0.1                    # ... and its effect size


@dataclass
class CanaryConfig:
    """python -m serving canary report model_name=NAME [key=value ...]: champion vs candidate over one window.

    Exit 0 = promote, 3 = roll back, 4 = not enough data yet.
    """

    model_name: str = MISSING
    champion: str | None = None             # serving versions; default: the running gateway's route for the model
    candidate: str | None = None
    window_minutes: float = 60              # compare the last N minutes of both sources (0 = everything logged)
    prediction_logs: str | None = None      # default: <serve_root>/<serve_instance>/logs/predictions
    access_log: str | None = None           # default: <gateway_root>/<gateway_instance>/logs/access.log
    serve_root: str = env_default("SHIPYARD_SERVE_ROOT", "outputs/serve")
    serve_instance: str = "default"
    gateway_root: str = env_default("SHIPYARD_GATEWAY_ROOT", "outputs/gateway")
    gateway_instance: str = "default"
    out: str | None = None                  # also write canary_report.json here
    thresholds: CanaryThresholds = field(default_factory=CanaryThresholds)


def read_access_log(path: Path, model: str, since: float | None) -> dict[str, dict[str, list]]:
    """version → {"status": [...], "seconds": [...]} for the model's predict requests in the window."""
    if not path.is_file():
        raise FileNotFoundError(f"gateway access log {path} does not exist (access_log=PATH)")
    out: dict[str, dict[str, list]] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = ACCESS_RE.search(line)
        if not m or m["model"] != model or not m["version"]:
            continue
        if since is not None and datetime.fromisoformat(m["time"]).timestamp() < since:
            continue
        row = out.setdefault(m["version"], {"status": [], "seconds": []})
        row["status"].append(int(m["status"]))
        row["seconds"].append(float(m["rt"]))
    return out


def summarize(access: dict[str, list], records: list[dict[str, Any]]) -> dict[str, Any]:
    """One version's figures: requests, 5xx ratio, gateway p50/p95 latency, handler latency, confidence."""
    status = np.array(access.get("status", []))
    seconds = np.array(access.get("seconds", []))
    conf = [r["prediction"]["confidence"] for r in records]
    handler = [r.get("latency_ms") for r in records if r.get("latency_ms") is not None]
    return {
        "requests": int(len(status)),
        "error_rate": float(np.mean(status >= 500)) if len(status) else None,
        "client_error_rate": float(np.mean((status >= 400) & (status < 500))) if len(status) else None,
        "latency_p50_ms": float(np.percentile(seconds, 50) * 1000) if len(seconds) else None,
        "latency_p95_ms": float(np.percentile(seconds, 95) * 1000) if len(seconds) else None,
        "handler_latency_p50_ms": float(np.percentile(handler, 50)) if handler else None,
        "logged_predictions": len(records),
        "mean_confidence": float(np.mean(conf)) if conf else None,
    }


def decide(champ: dict[str, Any], cand: dict[str, Any], distribution: dict[str, Any] | None,
           th: CanaryThresholds) -> tuple[str, list[str]]:
    """promote | rollback | wait, and the reasons."""
    if min(champ["requests"], cand["requests"]) < th.min_requests:
        return "wait", [f"need {th.min_requests} requests per version; have champion {champ['requests']}, "
                        f"candidate {cand['requests']}"]
    reasons = []
    if cand["error_rate"] - champ["error_rate"] > th.max_error_rate_increase:
        reasons.append(f"error rate {cand['error_rate']:.3f} vs champion {champ['error_rate']:.3f}")
    if champ["latency_p95_ms"] and cand["latency_p95_ms"] > th.max_latency_ratio * champ["latency_p95_ms"]:
        reasons.append(f"p95 latency {cand['latency_p95_ms']:.1f} ms vs champion {champ['latency_p95_ms']:.1f} ms")
    if champ["mean_confidence"] is not None and cand["mean_confidence"] is not None and \
            champ["mean_confidence"] - cand["mean_confidence"] > th.max_confidence_drop:
        reasons.append(f"mean confidence {cand['mean_confidence']:.3f} vs champion {champ['mean_confidence']:.3f}")
    if distribution and distribution["p_value"] < th.alpha and distribution["psi"] >= th.min_psi:
        reasons.append(f"prediction distribution differs (chi2 p={distribution['p_value']:.2g}, "
                       f"PSI={distribution['psi']:.2f})")
    return ("rollback", reasons) if reasons else ("promote", ["candidate within every threshold"])


def canary_report(cfg: CanaryConfig) -> dict[str, Any]:
    """Compare the two versions over the window; the dict includes `recommendation` and `reasons`."""
    from serving.gateway.config import GatewayConfig
    from serving.gateway.control import Gateway

    champion, candidate = cfg.champion, cfg.candidate
    gw = Gateway(GatewayConfig(root=cfg.gateway_root, instance=cfg.gateway_instance))
    if not (champion and candidate):
        route = gw.state().get("routes", {}).get(cfg.model_name, {})
        champion, candidate = champion or route.get("champion"), candidate or route.get("candidate")
    if not (champion and candidate):
        raise ValueError(f"no canary for {cfg.model_name}: pass champion=V candidate=V or route one with "
                         "`python -m serving gateway route NAME champion=V candidate=V`")
    since = time.time() - cfg.window_minutes * 60 if cfg.window_minutes else None
    access = read_access_log(Path(cfg.access_log) if cfg.access_log else gw.dir / "logs" / "access.log",
                             cfg.model_name, since)
    logs = Path(cfg.prediction_logs) if cfg.prediction_logs else \
        Path(cfg.serve_root).resolve() / cfg.serve_instance / "logs" / "predictions"
    recs = {v: read_records(logs, cfg.model_name, v, since)[0] if logs.is_dir() else [] for v in (champion, candidate)}
    champ, cand = summarize(access.get(champion, {}), recs[champion]), summarize(access.get(candidate, {}), recs[candidate])
    distribution = None
    labels = {v: [r["prediction"]["label"] for r in recs[v]] for v in recs}
    if min(len(labels[champion]), len(labels[candidate])) >= 20:
        dt = DriftThresholds(alpha=cfg.thresholds.alpha, min_psi=cfg.thresholds.min_psi)
        distribution = asdict(compare_categorical("prediction", labels[champion], labels[candidate], dt))
    recommendation, reasons = decide(champ, cand, distribution, cfg.thresholds)
    report = {"model": cfg.model_name, "window_minutes": cfg.window_minutes, "champion": {"version": champion, **champ},
              "candidate": {"version": candidate, **cand}, "prediction_distribution": distribution,
              "thresholds": asdict(cfg.thresholds), "recommendation": recommendation, "reasons": reasons}
    if cfg.out:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(cfg.out) / "canary_report.json", report)
    return report


def compose(overrides: Sequence[str] = ()) -> CanaryConfig:
    """`key=value` overrides → a validated CanaryConfig (core/schema.py's errors, exit 2)."""
    return from_overrides(CanaryConfig, overrides)


def main(overrides: list[str]) -> int:
    """CLI body: print the report; exit 0 promote, 3 rollback, 4 wait."""
    report = canary_report(compose(overrides))
    print(json.dumps(report, indent=2))
    print(f"recommendation: {report['recommendation']} ({'; '.join(report['reasons'])})")
    return EXIT[report["recommendation"]]
