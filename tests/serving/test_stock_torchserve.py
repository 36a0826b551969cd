"""The `.mar` files work in a stock TorchServe: plain `torchserve --start`, no project code on the path
(no PYTHONPATH, cwd outside the repository), only the archives and the installed packages."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import REPO
from tests.serving.expected import assert_same_prediction, predict_in_process, text_bodies
from tests.serving.servers import require_torchserve

pytestmark = [pytest.mark.torchserve, pytest.mark.slow]
TORCHSERVE = str(Path(sys.executable).parent / "torchserve")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_mar_served_by_plain_torchserve(tmp_path, exported_digits, exported_text):
    require_torchserve()
    home = tmp_path / "stock"  # outside the repository
    store, tmp, logs = home / "store", home / "tmp", home / "logs"
    for d in (store, tmp, logs):
        d.mkdir(parents=True)
    shutil.copy(exported_digits.mar, store / "digits.mar")
    shutil.copy(exported_text.mar, store / "text.mar")
    inf, man, met, gi, gm, wp = _free_ports(6)
    (home / "config.properties").write_text(
        f"inference_address=http://127.0.0.1:{inf}\nmanagement_address=http://127.0.0.1:{man}\n"
        f"metrics_address=http://127.0.0.1:{met}\ngrpc_inference_port={gi}\ngrpc_management_port={gm}\n"
        f"initial_worker_port={wp}\nmodel_store={store}\nload_models=digits.mar,text.mar\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(TEMP=str(tmp), TMPDIR=str(tmp), LOG_LOCATION=str(logs), METRICS_LOCATION=str(logs))
    # java inherits the launcher's stdout: send it to a file (a pipe would never reach EOF while java runs)
    with open(logs / "launcher.log", "wb") as out:
        args = dict(cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120)
        subprocess.run([TORCHSERVE, "--start", "--ncs", "--ts-config", "config.properties", "--model-store",
                        str(store)], **args, check=True)
    java_pid = int((tmp / ".model_server.pid").read_text())
    try:
        keys = _wait_for_keys(home / "key_file.json", java_pid)
        manage = {"Authorization": f"Bearer {keys['management']['key']}"}
        infer = {"Authorization": f"Bearer {keys['inference']['key']}"}
        names = {exported_digits.name, exported_text.name}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # READY workers, not just /ping
            try:
                ready = {n for n in names if any(w["status"] == "READY" for w in requests.get(
                    f"http://127.0.0.1:{man}/models/{n}", headers=manage, timeout=10).json()[0]["workers"])}
            except (requests.ConnectionError, KeyError, IndexError):
                ready = set()  # the key file comes before the listeners, and models register one by one
            if ready == names:
                break
            assert psutil.pid_exists(java_pid), (logs / "ts_log.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail(f"workers not READY: {(logs / 'model_log.log').read_text()[-3000:]}")

        pngs = sorted((REPO / "data" / "digits_samples").glob("*.png"))[:5]
        expected = predict_in_process(exported_digits.export_dir, [p.read_bytes() for p in pngs], "image")
        for path, want in zip(pngs, expected):
            resp = requests.post(f"http://127.0.0.1:{inf}/predictions/{exported_digits.name}", data=path.read_bytes(),
                                 headers=infer, timeout=30)
            assert resp.status_code == 200, resp.text
            assert_same_prediction(resp.json(), want)
        bodies = text_bodies(REPO / "data" / "support_tickets" / "test.csv", 3)
        expected = predict_in_process(exported_text.export_dir, bodies, "text")
        for body, want in zip(bodies, expected):
            resp = requests.post(f"http://127.0.0.1:{inf}/predictions/{exported_text.name}", data=body,
                                 headers={**infer, "Content-Type": "application/json"}, timeout=30)
            assert resp.status_code == 200, resp.text
            assert_same_prediction(resp.json(), want)
        # the workers really run without the repository on their path
        for name in names:
            worker = psutil.Process(requests.get(f"http://127.0.0.1:{man}/models/{name}", headers=manage,
                                                 timeout=10).json()[0]["workers"][0]["pid"])
            # TorchServe sets the worker's PYTHONPATH itself (the extracted model folder): no repository in it
            assert str(REPO) not in worker.environ().get("PYTHONPATH", "") and str(REPO) not in worker.cwd()
    finally:
        with open(logs / "launcher.log", "ab") as out:
            subprocess.run([TORCHSERVE, "--stop", "--foreground"], cwd=home, env=env, stdout=out,
                           stderr=subprocess.STDOUT, timeout=120)
        psutil.wait_procs([psutil.Process(java_pid)] if psutil.pid_exists(java_pid) else [], timeout=30)
    assert not psutil.pid_exists(java_pid) or psutil.Process(java_pid).status() == psutil.STATUS_ZOMBIE


def _wait_for_keys(path: Path, java_pid: int) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:
                pass  # being written
        assert psutil.pid_exists(java_pid), "java exited during start"
        time.sleep(0.2)
    pytest.fail("TorchServe wrote no key_file.json")
