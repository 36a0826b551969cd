"""ApacheBench (`ab -k`): one C, keep-alive, low-CPU client for every serving figure, so ours and the
baseline are measured by the same client (a Python `requests` client spent more CPU than the server)."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence


def run_ab(url: str, body: Path, headers: Sequence[str], requests: int, clients: int,
           content_type: str = "application/octet-stream") -> dict[str, Any]:
    """One `ab -k` run of `requests`: complete/failed counts, non-2xx, req/s, p50/p99 ms."""
    ab = shutil.which("ab")
    if not ab:
        raise RuntimeError("ab not found: apt-get install apache2-utils (scripts/services.sh up installs it)")
    # -l: answers of different lengths (200 vs 429 JSON) are not "failed" (ab's Length check counted those)
    with tempfile.NamedTemporaryFile(suffix=".csv") as csv:
        # -e: the percentile table in µs resolution (the stdout table is whole ms, too coarse at p50 ~2 ms)
        cmd = [ab, "-k", "-l", "-q", "-n", str(requests), "-c", str(clients), "-s", "60", "-p", str(body),
               "-T", content_type, "-e", csv.name,
               *[arg for h in headers for arg in ("-H", h)], url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        table = Path(csv.name).read_text()
    out = proc.stdout
    errors = proc.stderr.strip().splitlines()

    def number(label: str) -> float:
        found = re.search(rf"^{label}:\s+([0-9.]+)", out, re.M)
        return float(found.group(1)) if found else 0.0

    complete = int(number("Complete requests"))
    if not complete:  # ab refused (e.g. -n < -c) or reached nothing: no figure to give
        raise RuntimeError(f"ab -n {requests} -c {clients} {url}: 0 complete; ab said: "
                           f"{errors[0] if errors else 'nothing'}")  # the reason comes first, then its usage text

    # ab's csv prints garbage (1e15 ms) past its last sample on short runs: nothing exceeds the whole run
    longest_ms = number("Time taken for tests") * 1000
    percentiles = {int(p): float(v) for p, v in re.findall(r"^(\d+),([0-9.]+)$", table, re.M)
                   if float(v) <= longest_ms}
    # ab's own breakdown of "Failed requests" (Connect, Receive, Length, Exceptions) and its stderr lines
    kinds = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", out)
    failed_kinds = dict(zip(("connect", "receive", "length", "exceptions"), map(int, kinds.groups()))) if kinds else {}
    return {"complete": complete, "failed": int(number("Failed requests")),
            "failed_kinds": failed_kinds, "ab_stderr": errors[-5:],
            "non_2xx": int(number("Non-2xx responses")), "rps": number("Requests per second"),
            "p50_ms": percentiles.get(50), "p99_ms": percentiles.get(99), "clients": clients}
