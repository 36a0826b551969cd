"""A stock TorchServe: plain `torchserve --start` in a folder outside the repository, no project code on the path
(PYTHONPATH unset), TorchServe's own defaults (token auth on, model API off), the archives loaded at start.

    with stock_torchserve(tmp_path / "stock", [mar]) as ts:
        requests.post(ts.url("inference", f"predictions/{name}"), data=..., headers=ts.auth("inference"))

It also writes the folder's `instance.json` (ports only), the file Shipyard's clients and gateway find a server by,
so that a gateway can be put in front of it (serving/gateway/control.py: `serve_root`/`serve_instance` = the folder).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import psutil
import pytest
import requests

from tests.conftest import REPO
from tests.serving.servers import require_torchserve

TORCHSERVE = str(Path(sys.executable).parent / "torchserve")
API = ("inference", "management", "metrics", "grpc_inference", "grpc_management")


@dataclass
class StockServer:
    """One running stock TorchServe: its folder, ports and java pid."""

    home: Path
    ports: dict[str, int]
    java_pid: int

    @property
    def logs(self) -> Path:
        """LOG_LOCATION: ts_log.log, model_log.log, launcher.log."""
        return self.home / "logs"

    def url(self, api: str, path: str) -> str:
        """http://127.0.0.1:PORT/path of the inference|management listener."""
        return f"http://127.0.0.1:{self.ports[api]}/{path.lstrip('/')}"

    def auth(self, api: str) -> dict[str, str]:
        """The Authorization header of the api's key (key_file.json, written by TorchServe into its cwd)."""
        return {"Authorization": f"Bearer {json.loads((self.home / 'key_file.json').read_text())[api]['key']}"}

    def describe(self, name: str) -> dict:
        """GET management /models/NAME: the default version's description (workers, pids)."""
        return requests.get(self.url("management", f"models/{name}"), headers=self.auth("management"),
                            timeout=10).json()[0]

    def assert_worker_outside_repository(self, name: str) -> None:
        """TorchServe sets a worker's PYTHONPATH itself (the extracted model folder): no repository in it, nor in its cwd."""
        # by default one worker per core: a second may still be loading (pid -1), so check the READY ones
        ready = [psutil.Process(w["pid"]) for w in self.describe(name)["workers"] if w["status"] == "READY"]
        assert ready, self.describe(name)
        for worker in ready:
            assert str(REPO) not in worker.environ().get("PYTHONPATH", "") and str(REPO) not in worker.cwd()


def model_name(mar: Path) -> str:
    """The model name an archive registers under (its MANIFEST.json)."""
    with zipfile.ZipFile(mar) as zf:
        return json.loads(zf.read("MAR-INF/MANIFEST.json"))["model"]["modelName"]


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextmanager
def stock_torchserve(home: Path, archives: Sequence[Path], timeout: float = 120) -> Iterator[StockServer]:
    """Start plain torchserve in `home` with `archives` loaded; yield once each has a READY worker; always stop."""
    require_torchserve()
    store, tmp, logs = home / "store", home / "tmp", home / "logs"
    for d in (store, tmp, logs):
        d.mkdir(parents=True)
    names = set()
    for mar in archives:
        shutil.copy(mar, store / mar.name)
        names.add(model_name(mar))
    *listeners, worker_port = free_ports(6)
    ports = dict(zip(API, listeners))
    (home / "config.properties").write_text(
        f"inference_address=http://127.0.0.1:{ports['inference']}\n"
        f"management_address=http://127.0.0.1:{ports['management']}\n"
        f"metrics_address=http://127.0.0.1:{ports['metrics']}\ngrpc_inference_port={ports['grpc_inference']}\n"
        f"grpc_management_port={ports['grpc_management']}\ninitial_worker_port={worker_port}\n"
        f"model_store={store}\nload_models={','.join(m.name for m in archives)}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(TEMP=str(tmp), TMPDIR=str(tmp), LOG_LOCATION=str(logs), METRICS_LOCATION=str(logs))
    # java inherits the launcher's stdout: send it to a file (a pipe would never reach EOF while java runs)
    with open(logs / "launcher.log", "wb") as out:
        subprocess.run([TORCHSERVE, "--start", "--ncs", "--ts-config", "config.properties", "--model-store",
                        str(store)], cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120,
                       check=True)
    java_pid = int((tmp / ".model_server.pid").read_text())
    server = StockServer(home, ports, java_pid)
    try:
        _wait_for_keys(home / "key_file.json", java_pid)
        (home / "instance.json").write_text(json.dumps({"host": "127.0.0.1", "ports": ports, "pid": java_pid}))
        _wait_ready(server, names, timeout)
        yield server
    finally:
        with open(logs / "launcher.log", "ab") as out:
            subprocess.run([TORCHSERVE, "--stop", "--foreground"], cwd=home, env=env, stdout=out,
                           stderr=subprocess.STDOUT, timeout=120)
        psutil.wait_procs([psutil.Process(java_pid)] if psutil.pid_exists(java_pid) else [], timeout=30)
    assert not psutil.pid_exists(java_pid) or psutil.Process(java_pid).status() == psutil.STATUS_ZOMBIE


def _wait_ready(server: StockServer, names: set[str], timeout: float) -> None:
    """READY workers for every model, not just /ping (which is Healthy before any worker loads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ready = {n for n in names if any(w["status"] == "READY" for w in server.describe(n)["workers"])}
        except (requests.ConnectionError, KeyError, IndexError):
            ready = set()  # the key file comes before the listeners, and models register one by one
        if ready == names:
            return
        assert psutil.pid_exists(server.java_pid), (server.logs / "ts_log.log").read_text()[-3000:]
        time.sleep(0.5)
    pytest.fail(f"workers not READY: {(server.logs / 'model_log.log').read_text()[-3000:]}")


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
