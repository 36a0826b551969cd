"""A real Slurm array job over the test cluster (scripts/services.sh up) scores every record exactly once."""
from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from serving.scoring.writer import read_output, read_rejects
from tests.conftest import require_service, run_entry
from tests.serving.scoring.conftest import plant_bad_images, rows_by_id
from tests.slurm.conftest import FINAL_STATES, cluster_up

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def wait_for_array(job_id: str, tasks: int, timeout: float) -> dict[str, str]:
    """Poll accounting until every task of the array is in a final state; returns task id → state."""
    end = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < end:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State"], capture_output=True,
                             text=True, timeout=30).stdout
        states = dict(line.split("|")[:2] for line in out.strip().splitlines() if "_" in line.split("|")[0])
        if len(states) == tasks and all(s.split()[0] in FINAL_STATES for s in states.values()):
            return states
        time.sleep(1)
    subprocess.run(["scancel", job_id], check=False)
    raise AssertionError(f"array job {job_id} not finished after {timeout} s: {states}")


def test_slurm_array_scores_every_record_once(exported_digits, digit_pngs, tmp_path):
    require_service(cluster_up(), "no Slurm cluster: run `bash scripts/services.sh up` (as root)")
    images = tmp_path / "images"
    images.symlink_to(digit_pngs.folder, target_is_directory=True)
    listing = tmp_path / "images.txt"
    planted = plant_bad_images(tmp_path, digit_pngs.folder / digit_pngs.names[0])
    listing.write_text("\n".join([f"images/{n}" for n in digit_pngs.names] + list(planted)) + "\n")
    out = tmp_path / "out"
    proc = run_entry("score.py", f"model={exported_digits.mar}", f"input={listing}", f"output={out}",
                     "launcher=slurm", "slurm.array=3", "slurm.time=00:10:00", "chunk_size=40", "num_workers=1",
                     "torch_threads=1", "progress=false", timeout=120)
    job_id = re.search(r"Submitted batch job (\d+)", proc.stdout)[1]
    states = wait_for_array(job_id, 3, timeout=240)
    logs = {p.name: p.read_text() for p in (out / "_logs").glob(f"slurm-{job_id}_*.out")}
    assert set(states.values()) == {"COMPLETED"}, f"{states}\n{logs}"
    assert len(logs) == 3 and all("scoring task" in text for text in logs.values())
    summary = json.loads((out / "_SUCCESS.json").read_text())
    assert summary["num_shards"] == 3 and summary["model"]["name"] == exported_digits.name
    assert summary["scored"] == len(digit_pngs.names) and summary["rejected"] == len(planted)
    rows = rows_by_id(read_output(out))  # unique ids
    assert sorted(rows) == sorted(f"images/{n}" for n in digit_pngs.names)
    assert {r["id"]: r["code"] for r in read_rejects(out)} == planted
    shards = [json.loads(p.read_text()) for p in sorted((out / "_shards").glob("shard-*-of-00003.json"))]
    assert [s["shard_index"] for s in shards] == [0, 1, 2] and all(s["scored"] > 0 for s in shards)
